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

// -- message times (server timestamps shown in the browser's time zone) --------------------------

const DAY_MS = 24 * 60 * 60 * 1000;

function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** Whole calendar days between a timestamp and now (0 = today). */
function daysAgo(unixSeconds: number, nowMs: number): number {
  return Math.round((startOfDay(nowMs) - startOfDay(unixSeconds * 1000)) / DAY_MS);
}

/** "14:05" (or "2:05 PM", as the browser's locale has it). */
export function clockTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** A key that is equal for two timestamps on the same local day. */
export function dayKey(unixSeconds: number): string {
  const d = new Date(unixSeconds * 1000);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** Day separator: "Today", "Yesterday", "Monday", "Monday 3 March", "3 March 2023". */
export function dayLabel(unixSeconds: number, nowMs = serverNow()): string {
  const days = daysAgo(unixSeconds, nowMs);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  const date = new Date(unixSeconds * 1000);
  if (days < 7) return date.toLocaleDateString(undefined, { weekday: "long" });
  const sameYear = date.getFullYear() === new Date(nowMs).getFullYear();
  return date.toLocaleDateString(undefined, {
    weekday: sameYear ? "long" : undefined,
    day: "numeric",
    month: "long",
    year: sameYear ? undefined : "numeric",
  });
}

/** Time of a conversation's last message in the list: "14:05", "Yesterday", "Mon", "3 Mar". */
export function listTime(unixSeconds: number, nowMs = serverNow()): string {
  const days = daysAgo(unixSeconds, nowMs);
  if (days <= 0) return clockTime(unixSeconds);
  if (days === 1) return "Yesterday";
  const date = new Date(unixSeconds * 1000);
  if (days < 7) return date.toLocaleDateString(undefined, { weekday: "short" });
  const sameYear = date.getFullYear() === new Date(nowMs).getFullYear();
  return date.toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}
