// "last seen 5 min ago" from a server timestamp (unix seconds).

import { serverNow } from "../api.ts";

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export function lastSeenText(lastSeen: number | null, nowMs = serverNow()): string {
  if (lastSeen === null) return "offline";
  const ago = Math.max(0, nowMs / 1000 - lastSeen);
  if (ago < MINUTE) return "last seen just now";
  if (ago < HOUR) return `last seen ${Math.floor(ago / MINUTE)} min ago`;
  if (ago < DAY) return `last seen ${Math.floor(ago / HOUR)} h ago`;
  if (ago < 2 * DAY) return "last seen yesterday";
  if (ago < 7 * DAY) return `last seen ${Math.floor(ago / DAY)} days ago`;
  const date = new Date(lastSeen * 1000);
  const sameYear = date.getFullYear() === new Date(nowMs).getFullYear();
  return `last seen ${date.toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  })}`;
}

/** Full date and time, for a tooltip. */
export function fullTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleString(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });
}
