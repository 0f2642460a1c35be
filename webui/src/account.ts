// Own account and invitations: the HTTP calls (docs/protocol.md "Your account", "Invitations")
// and the small rules the pages share (username and password checks, readable devices, times).

import { ApiError, request, serverNow } from "./api.ts";
import type {
  AccountSessionList,
  InvitationCheck,
  TokenResponse,
} from "./protocol.ts";

// -- HTTP -----------------------------------------------------------------------------------------

export function checkInvitation(token: string): Promise<InvitationCheck> {
  return request("POST", "/api/invitations/check", { body: { token } });
}

export function acceptInvitation(
  token: string,
  username: string,
  password: string,
): Promise<TokenResponse> {
  return request("POST", "/api/invitations/accept", { body: { token, username, password } });
}

export function changePassword(
  accessToken: string,
  currentPassword: string,
  newPassword: string,
): Promise<void> {
  return request("POST", "/api/account/password", {
    token: accessToken,
    body: { current_password: currentPassword, new_password: newPassword },
  });
}

export function accountSessions(accessToken: string): Promise<AccountSessionList> {
  return request("GET", "/api/account/sessions", { token: accessToken });
}

export function endAccountSession(accessToken: string, id: string | number): Promise<void> {
  return request("DELETE", `/api/account/sessions/${encodeURIComponent(String(id))}`, {
    token: accessToken,
  });
}

// -- invitation links -----------------------------------------------------------------------------

/** The token of an invitation link's fragment (`#invite=<token>`), or null. */
export function invitationToken(hash: string): string | null {
  const match = /^#invite=([A-Za-z0-9_-]{1,256})$/.exec(hash.trim());
  if (match) return match[1];
  return hash.startsWith("#invite=") ? "" : null; // a mangled link: shown as not valid
}

export type BadLink = "invalid" | "expired" | "used_up" | "revoked";

/** Which bad-link page an error from check/accept means, or null if it is not about the link. */
export function badLink(error: unknown): BadLink | null {
  if (!(error instanceof ApiError)) return null;
  switch (error.code) {
    case "invitation_invalid":
      return "invalid";
    case "invitation_expired":
      return "expired";
    case "invitation_used_up":
      return "used_up";
    case "invitation_revoked":
      return "revoked";
    default:
      return null;
  }
}

// -- usernames and passwords ----------------------------------------------------------------------

/** The server's rule (appliance/services/auth.py USERNAME_PATTERN). */
const USERNAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const DEFAULT_MIN_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/** Why a username can't be used, or null. */
export function usernameProblem(name: string): string | null {
  if (!name) return "Choose a username.";
  if (name.length > 32) return "Use at most 32 characters.";
  if (!/^[A-Za-z0-9]/.test(name)) return "Start with a letter or a digit.";
  if (!USERNAME.test(name)) return "Use only letters, digits, dots, dashes and underscores.";
  return null;
}

/**
 * What is wrong with a new password before the server judges it (which also refuses common
 * ones), or null. `minLength` only when known: the server's setting wins.
 */
export function newPasswordProblem(
  password: string,
  options: { username?: string; minLength?: number } = {},
): string | null {
  if (!password) return "Choose a password.";
  if (options.minLength !== undefined && password.length < options.minLength) {
    return `Use at least ${options.minLength} characters.`;
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    return `Use at most ${MAX_PASSWORD_LENGTH} characters.`;
  }
  if (options.username && password.toLowerCase() === options.username.toLowerCase()) {
    return "Your password can't be your username.";
  }
  return null;
}

/** The server's words as a sentence: "password is too common" -> "Password is too common." */
export function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return "";
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

// -- devices and times ----------------------------------------------------------------------------

export type DeviceKind = "phone" | "tablet" | "computer" | "other";

export interface Device {
  /** "Chrome on Linux", "Safari on iPhone", "Unknown device". */
  name: string;
  kind: DeviceKind;
}

const BROWSERS: Array<[RegExp, string]> = [
  [/\bEdg(e|A|iOS)?\//, "Edge"],
  [/\bOPR\/|\bOpera\b/, "Opera"],
  [/\bSamsungBrowser\//, "Samsung Internet"],
  [/\bVivaldi\//, "Vivaldi"],
  [/\bFirefox\/|\bFxiOS\//, "Firefox"],
  [/\bHeadlessChrome\//, "Chrome (headless)"],
  [/\bChromium\//, "Chromium"],
  [/\bChrome\/|\bCriOS\//, "Chrome"],
  [/\bVersion\/[\d.]+.*\bSafari\//, "Safari"],
];

const SYSTEMS: Array<[RegExp, string, DeviceKind]> = [
  [/\biPhone\b/, "iPhone", "phone"],
  [/\biPad\b/, "iPad", "tablet"],
  [/\bAndroid\b.*\bMobile\b/, "Android", "phone"],
  [/\bAndroid\b/, "Android", "tablet"],
  [/\bWindows\b/, "Windows", "computer"],
  [/\bCrOS\b/, "ChromeOS", "computer"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS", "computer"],
  [/\bLinux\b|\bX11\b/, "Linux", "computer"],
];

/** A user agent made readable. */
export function describeDevice(userAgent: string | null | undefined): Device {
  const ua = (userAgent ?? "").trim();
  if (!ua) return { name: "Unknown device", kind: "other" };
  const browser = BROWSERS.find(([pattern]) => pattern.test(ua))?.[1] ?? null;
  const system = SYSTEMS.find(([pattern]) => pattern.test(ua)) ?? null;
  if (browser && system) return { name: `${browser} on ${system[1]}`, kind: system[2] };
  if (browser) return { name: browser, kind: "computer" };
  if (system) return { name: `${system[1]} device`, kind: system[2] };
  // A program rather than a browser ("curl/8.5.0", "python-httpx/0.28"): its name.
  const program = /^([A-Za-z][\w.-]{0,40})\//.exec(ua)?.[1];
  return { name: program ?? "Unknown device", kind: "other" };
}

/** "just now", "5 min ago", "3 h ago", "yesterday", "4 days ago", "3 Mar 2025". */
export function ago(unixSeconds: number, nowMs = serverNow()): string {
  const seconds = Math.max(0, nowMs / 1000 - unixSeconds);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 2 * 86_400) return "yesterday";
  if (seconds < 7 * 86_400) return `${Math.floor(seconds / 86_400)} days ago`;
  return shortDate(unixSeconds, nowMs);
}

/** "3 Dec", or "3 Dec 2025" in another year. */
export function shortDate(unixSeconds: number, nowMs = serverNow()): string {
  const date = new Date(unixSeconds * 1000);
  const sameYear = date.getFullYear() === new Date(nowMs).getFullYear();
  return date.toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}

/** "in 6 days (10 Dec, 14:05)"-style expiry for an invitation. */
export function expiryText(unixSeconds: number, nowMs = serverNow()): string {
  const seconds = unixSeconds - nowMs / 1000;
  const when = new Date(unixSeconds * 1000).toLocaleString(undefined, {
    day: "numeric",
    month: "long",
    hour: "2-digit",
    minute: "2-digit",
  });
  if (seconds <= 0) return "now";
  if (seconds < 3600) return `in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 86_400) return `in ${Math.round(seconds / 3600)} h (${when})`;
  return `on ${when}`;
}
