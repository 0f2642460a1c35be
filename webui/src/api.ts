// HTTP access to the appliance's JSON API. Plain functions of an access token; the Session
// (session.ts) owns the tokens and wraps these with refresh-on-expiry.

import type {
  ErrorBody,
  Me,
  MediaUrl,
  MessagePage,
  RecordingList,
  RoomBody,
  RoomList,
  TokenResponse,
  TurnConfig,
  UploadTicket,
  UserList,
} from "./protocol.ts";

/** The server answered with `{"error": {code, message}}` (or an unexpected status). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds to wait before trying again (429), from Retry-After or the body. */
  readonly retryAfter: number | null;
  /** Which fields were refused and why (400 from the set-up wizard). */
  readonly fields: Record<string, string>;

  constructor(status: number, body: ErrorBody, retryAfter: number | null) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code;
    this.retryAfter = retryAfter;
    this.fields = body.fields ?? {};
  }
}

/** The request never got an answer (server down, network gone). */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super("the appliance could not be reached", { cause });
    this.name = "NetworkError";
  }
}

/** What to tell the user when a request failed in a way the form has no special words for:
 * the network, or the appliance itself (logged for the developer console). */
export function unexpectedFailureText(error: unknown): string {
  if (error instanceof NetworkError) {
    return "Can't reach the appliance. Check your connection and try again.";
  }
  if (!(error instanceof ApiError)) console.error(error);
  return "Something went wrong on the appliance. Try again in a moment.";
}

/** Token-level refusals after which the user must sign in again. */
export const SESSION_ENDING_CODES = new Set([
  "token_missing",
  "token_invalid",
  "token_expired",
  "token_revoked",
  "token_reused",
  "account_disabled",
  "account_deleted",
]);

// Server clock minus browser clock, learnt from the Date header, so that "last seen 5 min ago"
// (server timestamps) stays right when the browser's clock is off.
let serverOffsetMs = 0;

/** The server's current time in milliseconds, as best known. */
export function serverNow(): number {
  return Date.now() + serverOffsetMs;
}

function learnClock(response: Response): void {
  const date = response.headers.get("Date");
  if (!date) return;
  const ms = Date.parse(date);
  // The header has whole seconds: +500 ms is the expected truncation.
  if (Number.isFinite(ms)) serverOffsetMs = ms + 500 - Date.now();
}

function parseRetryAfter(response: Response, body: ErrorBody): number | null {
  const header = response.headers.get("Retry-After");
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
    const at = Date.parse(header);
    if (Number.isFinite(at)) return Math.max(0, Math.ceil((at - Date.now()) / 1000));
  }
  return typeof body.retry_after === "number" ? Math.ceil(body.retry_after) : null;
}

function isErrorBody(value: unknown): value is { error: ErrorBody } {
  if (typeof value !== "object" || value === null || !("error" in value)) return false;
  const error = (value as { error: unknown }).error;
  return typeof error === "object" && error !== null && "code" in error && "message" in error;
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  /** The one-time set-up token (sent as `Authorization: Setup <token>`). */
  setupToken?: string;
  signal?: AbortSignal;
}

export async function request<T>(
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.setupToken) headers.Authorization = `Setup ${options.setupToken}`;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "same-origin",
      cache: "no-store",
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new NetworkError(error);
  }
  learnClock(response);
  if (response.status === 204) return undefined as T;
  let payload: unknown = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const body: ErrorBody = isErrorBody(payload)
      ? payload.error
      : { code: "http_" + response.status, message: response.statusText || "request failed" };
    throw new ApiError(response.status, body, parseRetryAfter(response, body));
  }
  return payload as T;
}

export function login(username: string, password: string): Promise<TokenResponse> {
  return request("POST", "/api/auth/login", { body: { username, password } });
}

export function refresh(refreshToken: string): Promise<TokenResponse> {
  return request("POST", "/api/auth/refresh", { body: { refresh_token: refreshToken } });
}

export function logout(token: string): Promise<void> {
  return request("POST", "/api/auth/logout", { token });
}

export function me(token: string): Promise<Me> {
  return request("GET", "/api/me", { token });
}

export function users(token: string): Promise<UserList> {
  return request("GET", "/api/users", { token });
}

// -- chat rooms ---------------------------------------------------------------------------------

export function rooms(token: string): Promise<RoomList> {
  return request("GET", "/api/rooms", { token });
}

export function openDirect(token: string, userId: number): Promise<RoomBody> {
  return request("POST", "/api/rooms/direct", { token, body: { user_id: userId } });
}

export function createGroup(token: string, name: string, memberIds: number[]): Promise<RoomBody> {
  return request("POST", "/api/rooms", { token, body: { name, member_ids: memberIds } });
}

export function messages(
  token: string,
  roomId: number,
  options: { before?: number | null; limit?: number } = {},
): Promise<MessagePage> {
  const query = new URLSearchParams();
  if (options.before) query.set("before", String(options.before));
  if (options.limit) query.set("limit", String(options.limit));
  const suffix = query.size ? `?${query}` : "";
  return request("GET", `/api/rooms/${roomId}/messages${suffix}`, { token });
}

// -- media and calls ------------------------------------------------------------------------------

export function requestUpload(
  token: string,
  body: { room_id: number; filename: string; content_type: string; size: number },
): Promise<UploadTicket> {
  return request("POST", "/api/media/uploads", { token, body });
}

/** A short-lived URL of a shared file (the JSON form of GET /api/media/{id}). */
export function mediaUrl(token: string, mediaId: string): Promise<MediaUrl> {
  return request("GET", `/api/media/${encodeURIComponent(mediaId)}`, { token });
}

export function turn(token: string): Promise<TurnConfig> {
  return request("GET", "/api/turn", { token });
}

// -- recordings -----------------------------------------------------------------------------------

export function recordings(token: string): Promise<RecordingList> {
  return request("GET", "/api/recordings", { token });
}

/** A short-lived URL of a recording (the JSON form of GET /api/recordings/{id}). */
export function recordingUrl(token: string, recordingId: string): Promise<MediaUrl> {
  return request("GET", `/api/recordings/${encodeURIComponent(recordingId)}`, { token });
}

export function deleteRecording(token: string, recordingId: string): Promise<void> {
  return request("DELETE", `/api/recordings/${encodeURIComponent(recordingId)}`, { token });
}
