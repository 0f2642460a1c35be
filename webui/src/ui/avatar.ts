// Initials avatars with a stable colour per username, and the presence dot.

import { h } from "./dom.ts";

const HUES = [212, 262, 330, 12, 35, 152, 180, 196];

export function hueOf(name: string): number {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return HUES[hash % HUES.length];
}

export function initials(name: string): string {
  // "margaret.hamilton" -> "MH", "bob" -> "B".
  const parts = name.split(/[._\-\s]+/).filter(Boolean);
  const letters = parts.length >= 2 ? parts[0][0] + parts[1][0] : (parts[0] ?? name).slice(0, 1);
  return letters.toUpperCase();
}

export function avatar(name: string, size: "sm" | "md" | "lg" = "md"): HTMLElement {
  const el = h("span", { class: `avatar avatar-${size}`, "aria-hidden": "true" }, initials(name));
  el.style.setProperty("--avatar-hue", String(hueOf(name)));
  return el;
}

/** A group's avatar: its name's initials on a rounded square. */
export function groupAvatar(name: string, size: "sm" | "md" | "lg" = "md"): HTMLElement {
  const el = avatar(name, size);
  el.classList.add("avatar-group");
  return el;
}
