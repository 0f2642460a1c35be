// One signed-in session: its tokens, its Socket.IO connection and keeping both alive.
//
// - Tokens live in sessionStorage (per tab, survives a reload). The access token is refreshed
//   over HTTP at 80% of its lifetime and handed to the open socket with `auth:refresh`, so the
//   server never closes it for expiry.
// - If the server closes the socket anyway (`session:close` token_expired, or a refused
//   reconnect with token_expired), one HTTP refresh + reconnect is tried; otherwise the session
//   ends and the app returns to the sign-in page with a message.
// - Refreshes are single-flight: a refresh token is only ever presented once (presenting a
//   rotated one makes the server revoke the whole login).

import { io, type Socket } from "socket.io-client";
import * as api from "./api.ts";
import { ApiError, NetworkError, SESSION_ENDING_CODES } from "./api.ts";
import { Emitter } from "./emitter.ts";
import type {
  ClientToServerEvents,
  Me,
  ServerToClientEvents,
  TokenResponse,
} from "./protocol.ts";

export type AppSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type ConnectionState = "connecting" | "connected" | "reconnecting";

interface StoredTokens {
  access: string;
  refresh: string;
  /** When the access token expires, browser clock, ms. */
  expiresAt: number;
  /** The access token's lifetime in seconds, as issued. */
  lifetime: number;
}

export interface SessionEvents extends Record<string, unknown> {
  /** The socket's connection state changed. */
  state: ConnectionState;
  /** The socket (re)connected: fresh presence follows; reload anything that may be stale. */
  connected: undefined;
  /** The session is over (revoked, expired beyond repair): show sign-in with this message. */
  ended: { message: string };
  /** The server wants a new password first (an admin reset it): the socket is closed for now. */
  passwordChangeRequired: undefined;
}

const STORAGE_KEY = "appliance.session.v1";
const REFRESH_AT = 0.8; // of the access token's lifetime
const RETRY_DELAY_MS = 5_000; // refresh retry while the server is unreachable
const ACK_TIMEOUT_MS = 10_000;

export const MESSAGES: Record<string, string> = {
  signed_out: "You have signed out.",
  token_expired: "Your session expired. Please sign in again.",
  token_revoked: "You were signed out. Please sign in again.",
  token_reused:
    "You were signed out because your session was used from another place. Please sign in again.",
  token_invalid: "Your session is no longer valid. Please sign in again.",
  token_missing: "Please sign in.",
  unreachable: "Can't reach the appliance. Check your connection and try again.",
  account_disabled: "Your account has been disabled by an administrator.",
  account_deleted: "Your account has been deleted by an administrator.",
};

/** Messages about the account itself (not the login), shown as a warning on the sign-in page. */
export const ACCOUNT_MESSAGES = new Set([MESSAGES.account_disabled, MESSAGES.account_deleted]);

export function messageFor(code: string): string {
  return MESSAGES[code] ?? MESSAGES.token_invalid;
}

// -- token storage ------------------------------------------------------------------------

function loadTokens(): StoredTokens | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as Partial<StoredTokens>;
    if (
      typeof value.access === "string" &&
      typeof value.refresh === "string" &&
      typeof value.expiresAt === "number" &&
      typeof value.lifetime === "number"
    ) {
      return value as StoredTokens;
    }
  } catch {
    // storage unavailable or corrupt: start signed out
  }
  return null;
}

function saveTokens(tokens: StoredTokens | null): void {
  try {
    if (tokens) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // private mode without storage: the session just won't survive a reload
  }
}

function fromResponse(res: TokenResponse): StoredTokens {
  // The token's `exp` is whole seconds from a truncated issue time, so it may end up to 1 s
  // sooner than `expires_in` says: count one second less.
  const lifetime = Math.max(1, res.expires_in - 1);
  return {
    access: res.access_token,
    refresh: res.refresh_token,
    expiresAt: Date.now() + lifetime * 1000,
    lifetime,
  };
}

function endsSession(error: unknown): error is ApiError {
  return error instanceof ApiError && (error.status === 401 || SESSION_ENDING_CODES.has(error.code));
}

// -- the session ----------------------------------------------------------------------------

export class Session extends Emitter<SessionEvents> {
  readonly me: Me;
  readonly socket: AppSocket;
  private tokens: StoredTokens;
  private state: ConnectionState = "connecting";
  private refreshing: Promise<void> | null = null;
  private refreshTimer: number | undefined;
  private closeReason: string | null = null;
  private triedExpiredRecovery = false;
  private closed = false;
  private readonly onVisible = (): void => {
    if (document.visibilityState === "visible" && Date.now() >= this.refreshDueAt()) {
      void this.renew();
    }
  };

  private constructor(me: Me, tokens: StoredTokens) {
    super();
    this.me = me;
    this.tokens = tokens;
    this.socket = io({
      path: "/socket.io/",
      autoConnect: false,
      // WebSocket first (a closed tab is noticed at once); long-polling if it is blocked.
      transports: ["websocket", "polling"],
      tryAllTransports: true,
      reconnectionDelay: 1_000,
      reconnectionDelayMax: 10_000,
      // A function, so every reconnect presents the current access token.
      auth: (cb) => cb({ token: this.tokens.access }),
    });
    this.wireSocket();
  }

  /** Sign in with a password. Throws ApiError / NetworkError for the sign-in form to show. */
  static async signIn(username: string, password: string): Promise<Session> {
    const tokens = fromResponse(await api.login(username, password));
    const me = await api.me(tokens.access);
    saveTokens(tokens);
    return new Session(me, tokens);
  }

  /** Sign in with a fresh token pair (an accepted invitation). */
  static async fromTokens(res: TokenResponse): Promise<Session> {
    const tokens = fromResponse(res);
    const me = await api.me(tokens.access);
    saveTokens(tokens);
    return new Session(me, tokens);
  }

  /** The session this tab had before a reload, or null (with why, if worth telling). */
  static async resume(): Promise<{ session: Session | null; message?: string }> {
    let tokens = loadTokens();
    if (!tokens) return { session: null };
    try {
      if (Date.now() > tokens.expiresAt - tokens.lifetime * (1 - REFRESH_AT) * 1000) {
        tokens = fromResponse(await api.refresh(tokens.refresh));
        saveTokens(tokens);
      }
      const me = await api.me(tokens.access);
      return { session: new Session(me, tokens) };
    } catch (error) {
      // Unreachable: keep the tokens, so a reload once the appliance is back resumes.
      if (error instanceof NetworkError) return { session: null, message: MESSAGES.unreachable };
      saveTokens(null);
      if (error instanceof ApiError && error.code === "token_expired") {
        return { session: null, message: MESSAGES.token_expired };
      }
      if (endsSession(error)) return { session: null, message: messageFor(error.code) };
      return { session: null };
    }
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** Whether only the password change is allowed (an admin reset the password). */
  get mustChangePassword(): boolean {
    return this.me.must_change_password === true;
  }

  /** Open the socket and start keeping the tokens fresh (again, after a pause). */
  start(): void {
    if (this.closed) return;
    this.scheduleRefresh();
    document.addEventListener("visibilitychange", this.onVisible);
    this.setState("connecting");
    this.socket.connect();
  }

  /** The password was changed here: the rest of the API (and the socket) work again. */
  passwordChanged(): void {
    this.me.must_change_password = false;
  }

  /** The server refused for password_change_required: close the socket and tell the app. */
  private requirePasswordChange(): void {
    if (this.closed) return;
    const first = !this.mustChangePassword || this.socket.active;
    this.me.must_change_password = true;
    window.clearTimeout(this.refreshTimer);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.socket.disconnect();
    if (first) this.emit("passwordChangeRequired", undefined);
  }

  /** Run an HTTP call with the access token, refreshing once if it turned out expired. */
  async authed<T>(call: (token: string) => Promise<T>): Promise<T> {
    const margin = Math.min(5_000, this.tokens.lifetime * 100); // 5 s, or 10% of short lifetimes
    if (Date.now() >= this.tokens.expiresAt - margin) await this.refreshOrEnd();
    try {
      return await call(this.tokens.access);
    } catch (error) {
      if (error instanceof ApiError && error.code === "password_change_required") {
        this.requirePasswordChange();
      }
      if (!(error instanceof ApiError && error.code === "token_expired")) throw error;
    }
    await this.refreshOrEnd();
    return call(this.tokens.access);
  }

  /** Sign out on the server (best effort) and forget the tokens. */
  async signOut(): Promise<void> {
    if (this.closed) return;
    const token = this.tokens.access;
    const refreshToken = this.tokens.refresh;
    this.shutdown();
    try {
      await api.logout(token);
    } catch (error) {
      // An expired access token cannot log out: get a fresh one for that, once.
      if (error instanceof ApiError && error.code === "token_expired") {
        try {
          await api.logout(fromResponse(await api.refresh(refreshToken)).access);
        } catch {
          // the server forgets the login when its refresh token expires
        }
      }
    }
  }

  // -- internals ------------------------------------------------------------------------

  private setState(state: ConnectionState): void {
    if (this.closed || state === this.state) return;
    this.state = state;
    this.emit("state", state);
  }

  private setTokens(tokens: StoredTokens): void {
    this.tokens = tokens;
    saveTokens(tokens);
  }

  private refreshDueAt(): number {
    return this.tokens.expiresAt - this.tokens.lifetime * (1 - REFRESH_AT) * 1000;
  }

  private scheduleRefresh(delayMs = this.refreshDueAt() - Date.now()): void {
    window.clearTimeout(this.refreshTimer);
    if (this.closed) return;
    this.refreshTimer = window.setTimeout(() => void this.renew(), Math.max(0, delayMs));
  }

  /** HTTP refresh, single-flight. */
  private refreshTokens(): Promise<void> {
    if (!this.refreshing) {
      const refreshToken = this.tokens.refresh;
      this.refreshing = api
        .refresh(refreshToken)
        .then((res) => {
          if (!this.closed) this.setTokens(fromResponse(res));
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  /** HTTP refresh; a refusal ends the session (and is rethrown). */
  private async refreshOrEnd(): Promise<void> {
    try {
      await this.refreshTokens();
    } catch (error) {
      if (endsSession(error)) this.end(messageFor(error.code));
      throw error;
    }
  }

  /** The timed refresh: new tokens over HTTP, then re-authenticate the open socket. */
  private async renew(): Promise<void> {
    if (this.closed) return;
    try {
      await this.refreshOrEnd();
    } catch (error) {
      if (!this.closed) this.scheduleRefresh(RETRY_DELAY_MS); // unreachable or 5xx/429: retry
      if (!(error instanceof NetworkError || error instanceof ApiError)) console.error(error);
      return;
    }
    this.scheduleRefresh();
    if (!this.socket.connected) return; // a reconnect will present the new token itself
    try {
      const ack = await this.socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("auth:refresh", { token: this.tokens.access });
      if (!ack.ok && !this.closed) {
        // Refused on this socket: reconnect with the new token; a refusal there ends it.
        this.socket.disconnect();
        this.setState("reconnecting");
        this.socket.connect();
      }
    } catch {
      // No ack in time: the connection is dropping; its reconnect uses the new token.
    }
  }

  /** The server closed the socket for an expired token: one refresh + reconnect. */
  private async recoverExpired(): Promise<void> {
    if (this.closed) return;
    if (this.triedExpiredRecovery) {
      this.end(MESSAGES.token_expired);
      return;
    }
    this.triedExpiredRecovery = true;
    this.setState("reconnecting");
    try {
      await this.refreshOrEnd();
    } catch (error) {
      if (this.closed) return;
      // Unreachable: keep trying while the page is open, shown as "reconnecting".
      this.triedExpiredRecovery = false;
      window.setTimeout(() => void this.recoverExpired(), RETRY_DELAY_MS);
      if (!(error instanceof NetworkError || error instanceof ApiError)) console.error(error);
      return;
    }
    this.scheduleRefresh();
    this.socket.connect();
  }

  private wireSocket(): void {
    const socket = this.socket;
    socket.on("connect", () => {
      this.triedExpiredRecovery = false;
      this.closeReason = null;
      this.setState("connected");
      this.emit("connected", undefined);
    });
    socket.on("session:close", ({ reason }) => {
      this.closeReason = reason; // acted on when the disconnect that follows arrives
    });
    socket.on("disconnect", (reason) => {
      if (this.closed || reason === "io client disconnect") return;
      if (reason !== "io server disconnect") {
        this.setState("reconnecting"); // transport trouble: socket.io reconnects by itself
        return;
      }
      const why = this.closeReason;
      this.closeReason = null;
      if (why === null || why === "token_expired") void this.recoverExpired();
      else this.end(messageFor(why));
    });
    socket.on("connect_error", (error) => {
      if (this.closed) return;
      if (socket.active) {
        this.setState("reconnecting"); // network-level failure: retried automatically
        return;
      }
      // Refused by the server: error.message is the code (token_expired, token_revoked, ...).
      if (error.message === "token_expired") void this.recoverExpired();
      else if (error.message === "password_change_required") this.requirePasswordChange();
      else this.end(messageFor(error.message));
    });
  }

  /** Stop everything; no events after this. */
  private shutdown(): void {
    this.closed = true;
    window.clearTimeout(this.refreshTimer);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.socket.disconnect();
    this.socket.removeAllListeners();
    saveTokens(null);
  }

  /** The session is over: tell the app (which shows sign-in with the message). */
  private end(message: string): void {
    if (this.closed) return;
    this.shutdown();
    this.emit("ended", { message });
    this.clearListeners();
  }
}
