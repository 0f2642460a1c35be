// Wire types of the appliance's HTTP API and Socket.IO events (see docs/protocol.md on the server).
// Later screens (media, calls) add their events to the two event maps below.

export interface ErrorBody {
  code: string;
  message: string;
  retry_after?: number;
  /** Per-field messages by dotted path, e.g. {"admin.password": "must be at least 8 characters"}. */
  fields?: Record<string, string>;
}

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  token_type: "Bearer";
  expires_in: number;
  /** Sign-in only: the password must be changed before anything else (GET /api/me says so too). */
  must_change_password?: boolean;
}

export interface Me {
  user_id: number;
  username: string;
  is_admin: boolean;
  /** Set by an admin's password reset: only the password change works until it is done. */
  must_change_password?: boolean;
}

// -- own account and invitations ----------------------------------------------------------------

/** One login (one refresh-token family) of the signed-in user. */
export interface AccountSession {
  id: string | number;
  /** Unix seconds (server clock). */
  created_at: number;
  last_used_at: number | null;
  client_address: string | null;
  user_agent: string | null;
  /** This browser's own login. */
  current: boolean;
}

export interface AccountSessionList {
  /** Newest first. */
  sessions: AccountSession[];
}

export interface InvitationCheck {
  organisation: string;
  is_admin: boolean;
  /** Unix seconds (server clock). */
  expires_at: number;
  /** The password policy's minimum length, if the server tells. */
  password_min_length?: number;
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

// -- chat ------------------------------------------------------------------------------------

export interface RoomMember {
  user_id: number;
  username: string;
  role: "admin" | "member";
}

export interface Room {
  id: number;
  kind: "direct" | "group";
  name: string | null;
  /** Unix seconds (server clock). */
  created_at: number;
  members: RoomMember[];
}

export interface ChatMessage {
  id: number;
  room_id: number;
  sender: { user_id: number; username: string };
  /** Empty once deleted. */
  text: string;
  /** Unix seconds (server clock), fractional. */
  created_at: number;
  client_msg_id: string;
  edited_at?: number;
  deleted?: true;
  deleted_at?: number;
  /** A shared file; `text` is then its caption (may be empty). */
  attachment?: Attachment;
}

// -- media -------------------------------------------------------------------------------------

export interface Attachment {
  media_id: string;
  filename: string;
  content_type: string;
  size: number;
}

export interface UploadTicket {
  media_id: string;
  upload: { url: string; method: "PUT"; headers: Record<string, string> };
  expires_in: number;
}

export interface MediaUrl {
  url: string;
  expires_in: number;
}

// -- calls -------------------------------------------------------------------------------------

export interface CallMedia {
  audio: boolean;
  video: boolean;
}

export interface CallPeer {
  user_id: number;
  username: string;
}

export interface TurnConfig {
  iceServers: RTCIceServer[];
  iceTransportPolicy: RTCIceTransportPolicy;
  ttl: number;
  /** Unix seconds, server clock. */
  expires_at: number;
}

export type CallEndReason =
  | "hangup"
  | "cancelled"
  | "declined"
  | "busy"
  | "timeout"
  | "disconnected"
  | "unavailable"
  | "answered_elsewhere"
  | "server_restart"
  | (string & {});

export interface SdpBody {
  type: "offer" | "answer";
  sdp: string;
}

export interface CandidateBody {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

// -- recording --------------------------------------------------------------------------------

export type RecordingState = "starting" | "recording" | "stopped" | "failed";

/** `call:recording`: the recording of a call changed (sent to both participants). */
export interface CallRecordingEvent {
  call_id: string;
  recording_id: string | null;
  state: RecordingState;
  /** Who started it (starting, recording) or stopped it; null when the appliance ended it. */
  by: CallPeer | null;
  /** stopped: participant_left / call_ended; failed: recorder_lost, timeout, disk_full... */
  reason?: string;
}

export interface Recording {
  id: string;
  call_id: string;
  status: "processing" | "ready";
  started_by: CallPeer;
  participants: CallPeer[];
  /** Unix seconds (server clock). */
  started_at: number;
  ended_at: number | null;
  /** Seconds; null while processing. */
  duration: number | null;
  /** Bytes; null while processing. */
  size: number | null;
  content_type: string | null;
}

export interface RecordingList {
  /** Newest first. */
  recordings: Recording[];
}

export interface RoomSummary extends Room {
  unread: number;
  last_message: ChatMessage | null;
}

export interface RoomList {
  rooms: RoomSummary[];
}

export interface RoomBody {
  room: Room;
}

export interface MessagePage {
  /** Newest first. */
  messages: ChatMessage[];
  next_before: number | null;
}

export interface SyncRoom {
  room_id: number;
  /** Oldest first; deleted messages left out. */
  messages: ChatMessage[];
  has_more: boolean;
}

export interface ReadEvent {
  room_id: number;
  user_id: number;
  message_id: number;
}

export interface TypingEvent {
  room_id: number;
  user_id: number;
  typing: boolean;
}

// -- event maps --------------------------------------------------------------------------------

export interface ServerToClientEvents {
  "presence:list": (data: { users: OnlineUser[] }) => void;
  user_online: (data: OnlineUser) => void;
  user_offline: (data: OnlineUser & { last_seen: number }) => void;
  "session:close": (data: { reason: CloseReason; message: string }) => void;
  "chat:message": (message: ChatMessage) => void;
  "chat:edit": (data: { message: ChatMessage }) => void;
  "chat:delete": (data: { room_id: number; message_id: number }) => void;
  "chat:read": (data: ReadEvent) => void;
  "chat:typing": (data: TypingEvent) => void;
  "room:joined": (data: { room: Room }) => void;
  "room:left": (data: { room_id: number; user_id: number }) => void;
  rate_limited: (data: { event: string; retry_after: number }) => void;
  "call:incoming": (data: { call_id: string; caller: CallPeer; media: CallMedia }) => void;
  "call:accepted": (data: { call_id: string }) => void;
  "call:rejected": (data: { call_id: string; reason: "declined" | "busy" }) => void;
  "call:end": (data: { call_id: string; reason: CallEndReason }) => void;
  "call:reconnecting": (data: { call_id: string; user_id: number }) => void;
  "call:resumed": (data: { call_id: string; user_id: number }) => void;
  "webrtc:offer": (data: { call_id: string; from: number; offer: SdpBody }) => void;
  "webrtc:answer": (data: { call_id: string; from: number; answer: SdpBody }) => void;
  "webrtc:ice-candidate": (data: {
    call_id: string;
    from: number;
    candidate: CandidateBody | null;
  }) => void;
  "call:recording": (data: CallRecordingEvent) => void;
  "recorder:answer": (data: { call_id: string; answer: SdpBody }) => void;
  "recorder:ice-candidate": (data: { call_id: string; candidate: CandidateBody | null }) => void;
  "recording:ready": (data: { recording_id: string; call_id: string }) => void;
}

export interface ClientToServerEvents {
  "auth:refresh": (data: { token: string }, ack: (res: Ack<{ expires_at: number }>) => void) => void;
  "presence:list": (ack: (res: Ack<{ users: OnlineUser[] }>) => void) => void;
  "chat:message": (
    data: { room_id: number; text: string; client_msg_id: string },
    ack: (res: Ack<{ message: ChatMessage }>) => void,
  ) => void;
  "chat:edit": (
    data: { message_id: number; text: string },
    ack: (res: Ack<{ message: ChatMessage }>) => void,
  ) => void;
  "chat:delete": (
    data: { message_id: number },
    ack: (res: Ack<{ room_id: number; message_id: number }>) => void,
  ) => void;
  "chat:read": (
    data: { room_id: number; message_id: number },
    ack: (res: Ack<{ room_id: number; message_id: number; unread: number }>) => void,
  ) => void;
  "chat:typing": (data: { room_id: number; typing: boolean }, ack?: (res: Ack) => void) => void;
  "chat:sync": (
    data: { rooms: Array<{ room_id: number; last_id: number }> },
    ack: (res: Ack<{ rooms: SyncRoom[] }>) => void,
  ) => void;
  "media:uploaded": (
    data: { media_id: string; caption?: string },
    ack: (res: Ack<{ message: ChatMessage }>) => void,
  ) => void;
  "call:start": (
    data: { callee_id: number; media: CallMedia },
    ack: (res: Ack<{ call_id: string }>) => void,
  ) => void;
  "call:accepted": (data: { call_id: string }, ack: (res: Ack<{ call_id: string }>) => void) => void;
  "call:rejected": (data: { call_id: string }, ack: (res: Ack<{ call_id: string }>) => void) => void;
  "call:end": (data: { call_id: string }, ack: (res: Ack<{ call_id: string }>) => void) => void;
  "call:resume": (
    data: { call_id: string },
    ack: (
      res: Ack<{ call_id: string; role: "caller" | "callee"; peer: CallPeer; media: CallMedia }>,
    ) => void,
  ) => void;
  "webrtc:offer": (data: { call_id: string; offer: SdpBody }, ack: (res: Ack) => void) => void;
  "webrtc:answer": (data: { call_id: string; answer: SdpBody }, ack: (res: Ack) => void) => void;
  "webrtc:ice-candidate": (
    data: { call_id: string; candidate: CandidateBody | null },
    ack: (res: Ack) => void,
  ) => void;
  "call:record": (
    data: { call_id: string; action: "start" | "stop" },
    ack: (
      res: Ack<{ call_id: string; recording_id: string | null; state: RecordingState }>,
    ) => void,
  ) => void;
  "recorder:offer": (data: { call_id: string; offer: SdpBody }, ack: (res: Ack) => void) => void;
  "recorder:ice-candidate": (
    data: { call_id: string; candidate: CandidateBody | null },
    ack: (res: Ack) => void,
  ) => void;
}
