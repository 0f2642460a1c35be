// Wire types of the appliance's HTTP API and Socket.IO events (see docs/protocol.md on the server).
// Later screens (chat, media, calls) add their events to the two event maps below.

export interface ErrorBody {
  code: string;
  message: string;
  retry_after?: number;
}

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
}

export interface Me {
  user_id: number;
  username: string;
  is_admin: boolean;
}

export interface DirectoryUser {
  user_id: number;
  username: string;
  is_admin: boolean;
  online: boolean;
  /** Unix seconds (server clock), or null if the user was never seen. */
  last_seen: number | null;
}

export interface UserList {
  users: DirectoryUser[];
}

export interface OnlineUser {
  user_id: number;
  username: string;
}

export type Ack<T extends object = object> =
  | ({ ok: true } & T)
  | { ok: false; error: ErrorBody };

/** Why the server is about to close a socket (`session:close`). */
export type CloseReason = "token_expired" | "token_revoked" | (string & {});

export interface ServerToClientEvents {
  "presence:list": (data: { users: OnlineUser[] }) => void;
  user_online: (data: OnlineUser) => void;
  user_offline: (data: OnlineUser & { last_seen: number }) => void;
  "session:close": (data: { reason: CloseReason; message: string }) => void;
}

export interface ClientToServerEvents {
  "auth:refresh": (data: { token: string }, ack: (res: Ack<{ expires_at: number }>) => void) => void;
  "presence:list": (ack: (res: Ack<{ users: OnlineUser[] }>) => void) => void;
}
