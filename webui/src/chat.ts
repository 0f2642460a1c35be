// Chat state: my rooms, their messages, messages on their way out, read positions and typing,
// kept live from the socket and caught up after every reconnect.
//
// - The room list comes from GET /api/rooms (on start and after every reconnect, for unread counts
//   and rooms joined meanwhile) and is kept live by chat:* and room:* events.
// - A room's messages are loaded when it is first opened (its "window": the newest page, then
//   older pages on demand). Windows are contiguous: live events append, `chat:sync` fills what a
//   dropped connection missed, history pages prepend. Everything is merged by message id.
// - Sending is optimistic: a message gets a client_msg_id and shows as pending until acked. What
//   is not acked (no connection, lost ack) is resent with the same id on the next connect; the
//   server stores and broadcasts it once. The outbox survives a reload of the tab.

import * as api from "./api.ts";
import { ApiError, NetworkError, serverNow } from "./api.ts";
import { Emitter } from "./emitter.ts";
import type {
  ChatMessage,
  ErrorBody,
  MessagePage,
  ReadEvent,
  Room,
  RoomSummary,
  TypingEvent,
} from "./protocol.ts";
import type { Session } from "./session.ts";

export const MAX_TEXT_LENGTH = 4000; // chat.max_text_length on the server (default)
const PAGE_SIZE = 50;
const ACK_TIMEOUT_MS = 10_000;
const RESEND_DELAY_MS = 2_000; // after an ack timeout on a live connection
const TYPING_REFRESH_MS = 3_000; // resend typing:true at most this often
const TYPING_SHOWN_MS = 7_000; // the server's typing_ttl (6 s) plus a margin for lost events
const READ_RETRY_MS = 5_000;
const RECENT_LIVE_KEEP = 200;
const OUTBOX_KEY = "appliance.outbox.v1";

export type PendingState = "queued" | "sending" | "failed";

export interface PendingMessage {
  clientMsgId: string;
  roomId: number;
  text: string;
  /** Unix seconds, server clock (estimated). */
  createdAt: number;
  state: PendingState;
  /** Why it failed, for people. */
  error: string | null;
  attempt: number;
}

export interface MessageWindow {
  byId: Map<number, ChatMessage>;
  /** `before` for the next older page; null once the beginning is loaded. */
  nextBefore: number | null;
  loading: "initial" | "older" | "refresh" | null;
  /** The newest page has arrived at least once. */
  loaded: boolean;
  /** Edits/deletes may have been missed (a reconnect): reload the newest page when shown. */
  stale: boolean;
  error: string | null;
}

export interface RoomEntry {
  room: Room;
  unread: number;
  /** The newest message known (may be deleted). */
  last: ChatMessage | null;
  window: MessageWindow | null;
  /** Read positions of the other members, learnt from chat:read events. */
  readBy: Map<number, number>;
  /** Members typing now -> the timer that forgets it. */
  typing: Map<number, number>;
  /** My read position as far as known (the server only tells the unread count). */
  myRead: number;
  /** Ids of others' messages that arrived live, to correct unread counts of racing list loads. */
  recentLive: number[];
  readInFlight: boolean;
  readRetryAt: number;
  /** Order of creation here, to tell entries newer than a list load apart. */
  born: number;
}

export type ListStatus =
  | { kind: "loading" }
  | { kind: "ready" }
  | { kind: "error"; message: string };

export interface ChatEvents extends Record<string, unknown> {
  /** Something changed: in that room, or (null) the list as a whole. */
  changed: { roomId: number | null };
  /** A room is no longer mine (left, removed, or gone). */
  removed: { roomId: number; title: string };
  /** Something to tell the user in a toast. */
  notice: { text: string };
}

function newWindow(): MessageWindow {
  return {
    byId: new Map(),
    nextBefore: null,
    loading: null,
    loaded: false,
    stale: false,
    error: null,
  };
}

function randomId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // crypto.randomUUID needs a secure context (https or localhost); the appliance may be on
  // plain http in a LAN: build a v4 UUID from getRandomValues, available everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return `${parts.join("-")}-${hex.slice(20)}`;
}

/** A client_msg_id: 1-64 of [A-Za-z0-9_.:-]. */
export function newClientMsgId(): string {
  return `web:${randomId()}`;
}

/** Length as the server counts it (code points). */
export function textLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => window.setTimeout(resolve, ms));
}

/** The later state of the same message: deletion wins, then the later edit. */
function fresher(a: ChatMessage, b: ChatMessage): ChatMessage {
  if (a.deleted) return a;
  if (b.deleted) return b;
  return (b.edited_at ?? 0) >= (a.edited_at ?? 0) ? b : a;
}

function deletedCopy(message: ChatMessage, at: number): ChatMessage {
  return { ...message, text: "", deleted: true, deleted_at: message.deleted_at ?? at };
}

/** Ack failure (or none at all) as something to show. */
export interface ChatFailure {
  code: string;
  text: string;
}

export class Chat extends Emitter<ChatEvents> {
  readonly me: number;
  private readonly session: Session;
  private readonly entries = new Map<number, RoomEntry>();
  private outbox: PendingMessage[] = [];
  private readonly typingSent = new Map<number, number>();
  private readonly timers = new Set<number>();
  private unsubscribe: Array<() => void> = [];
  private loadSeq = 0;
  private loading: Promise<void> | null = null;
  private epoch = 0;
  private connectedOnce = false;
  private syncing: Promise<void> | null = null;
  private reloadTimer: number | undefined;
  private disposed = false;
  status: ListStatus = { kind: "loading" };
  /** The room on screen, if any (caught up first after a reconnect). */
  activeRoomId: number | null = null;

  constructor(session: Session) {
    super();
    this.session = session;
    this.me = session.me.user_id;
    this.restoreOutbox();
    const socket = session.socket;
    const onMessage = (m: ChatMessage): void => this.onMessage(m);
    const onEdit = ({ message }: { message: ChatMessage }): void => this.applyEdit(message);
    const onDelete = (d: { room_id: number; message_id: number }): void =>
      this.applyDelete(d.room_id, d.message_id);
    const onRead = (e: ReadEvent): void => this.onRead(e);
    const onTyping = (e: TypingEvent): void => this.onTyping(e);
    const onJoined = ({ room }: { room: Room }): void => this.onJoined(room);
    const onLeft = (e: { room_id: number; user_id: number }): void => this.onLeft(e);
    socket.on("chat:message", onMessage);
    socket.on("chat:edit", onEdit);
    socket.on("chat:delete", onDelete);
    socket.on("chat:read", onRead);
    socket.on("chat:typing", onTyping);
    socket.on("room:joined", onJoined);
    socket.on("room:left", onLeft);
    this.unsubscribe.push(
      () => socket.off("chat:message", onMessage),
      () => socket.off("chat:edit", onEdit),
      () => socket.off("chat:delete", onDelete),
      () => socket.off("chat:read", onRead),
      () => socket.off("chat:typing", onTyping),
      () => socket.off("room:joined", onJoined),
      () => socket.off("room:left", onLeft),
      session.on("connected", () => void this.onConnected()),
      session.on("state", (state) => {
        // Typing shown from before a drop would never be cleared: forget it.
        if (state !== "connected") this.clearAllTyping();
      }),
    );
  }

  // -- reading the state ------------------------------------------------------------------

  get connected(): boolean {
    return this.session.socket.connected;
  }

  /** My rooms, most recently active first. */
  list(): RoomEntry[] {
    return [...this.entries.values()].sort(
      (a, b) => this.activity(b) - this.activity(a) || b.room.id - a.room.id,
    );
  }

  get(roomId: number): RoomEntry | undefined {
    return this.entries.get(roomId);
  }

  /** Seconds of the last thing that happened in a room, for ordering. */
  activity(entry: RoomEntry): number {
    let at = Math.max(entry.room.created_at, entry.last?.created_at ?? 0);
    for (const p of this.outbox) if (p.roomId === entry.room.id) at = Math.max(at, p.createdAt);
    return at;
  }

  directWith(userId: number): RoomEntry | undefined {
    for (const entry of this.entries.values()) {
      if (entry.room.kind === "direct" && entry.room.members.some((m) => m.user_id === userId)) {
        return entry;
      }
    }
    return undefined;
  }

  /** The other member of a direct room. */
  peer(entry: RoomEntry): { user_id: number; username: string } | null {
    if (entry.room.kind !== "direct") return null;
    return entry.room.members.find((m) => m.user_id !== this.me) ?? null;
  }

  title(entry: RoomEntry): string {
    if (entry.room.kind === "group") return entry.room.name ?? "Group";
    return this.peer(entry)?.username ?? "Unknown person";
  }

  /** The loaded messages of a room, oldest first. */
  messages(roomId: number): ChatMessage[] {
    const window = this.entries.get(roomId)?.window;
    if (!window) return [];
    return [...window.byId.values()].sort((a, b) => a.id - b.id);
  }

  pending(roomId: number): PendingMessage[] {
    return this.outbox.filter((p) => p.roomId === roomId);
  }

  /** Usernames of the others typing in a room now. */
  typingNames(roomId: number): string[] {
    const entry = this.entries.get(roomId);
    if (!entry) return [];
    const names: string[] = [];
    for (const userId of entry.typing.keys()) {
      const member = entry.room.members.find((m) => m.user_id === userId);
      if (member) names.push(member.username);
    }
    return names.sort((a, b) => a.localeCompare(b));
  }

  // -- the room list ------------------------------------------------------------------------

  /** (Re)load my rooms over HTTP. */
  reloadRooms(): Promise<void> {
    const seq = ++this.loadSeq;
    const mark = this.epoch;
    if (this.status.kind === "error") {
      this.status = { kind: "loading" };
      this.emit("changed", { roomId: null });
    }
    const run = (async (): Promise<void> => {
      let rooms: RoomSummary[];
      try {
        rooms = (await this.session.authed((token) => api.rooms(token))).rooms;
      } catch (error) {
        if (seq !== this.loadSeq || this.disposed) return;
        if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
        if (this.entries.size > 0 && error instanceof NetworkError) return; // keep what we have
        this.status = {
          kind: "error",
          message:
            error instanceof NetworkError
              ? "Can't reach the appliance right now."
              : "Your conversations could not be loaded.",
        };
        this.emit("changed", { roomId: null });
        return;
      }
      if (seq !== this.loadSeq || this.disposed) return;
      const seen = new Set<number>();
      for (const summary of rooms) {
        seen.add(summary.id);
        this.mergeSummary(summary);
      }
      for (const [id, entry] of [...this.entries]) {
        // Rooms that arrived by event while the request was out are not in its answer.
        if (!seen.has(id) && entry.born <= mark) this.drop(id);
      }
      this.status = { kind: "ready" };
      this.emit("changed", { roomId: null });
    })();
    const tracked: Promise<void> = run.finally(() => {
      if (this.loading === tracked) this.loading = null;
    });
    this.loading = tracked;
    return run;
  }

  private scheduleReload(): void {
    window.clearTimeout(this.reloadTimer);
    this.reloadTimer = window.setTimeout(() => void this.reloadRooms(), 300);
  }

  private createEntry(room: Room): RoomEntry {
    const entry: RoomEntry = {
      room,
      unread: 0,
      last: null,
      window: null,
      readBy: new Map(),
      typing: new Map(),
      myRead: 0,
      recentLive: [],
      readInFlight: false,
      readRetryAt: 0,
      born: ++this.epoch,
    };
    this.entries.set(room.id, entry);
    return entry;
  }

  private upsertRoom(room: Room): RoomEntry {
    const clean: Room = {
      id: room.id,
      kind: room.kind,
      name: room.name,
      created_at: room.created_at,
      members: room.members,
    };
    const entry = this.entries.get(room.id);
    if (!entry) return this.createEntry(clean);
    entry.room = clean;
    const members = new Set(clean.members.map((m) => m.user_id));
    for (const userId of [...entry.typing.keys()]) {
      if (!members.has(userId)) this.forgetTyping(entry, userId);
    }
    return entry;
  }

  private mergeSummary(summary: RoomSummary): void {
    const { unread, last_message: last, ...room } = summary;
    const entry = this.upsertRoom(room);
    if (last) this.noteLast(entry, last);
    const lastId = last?.id ?? 0;
    // Others' messages that arrived live after the server's answer was made.
    const extra = entry.recentLive.filter((id) => id > lastId && id > entry.myRead).length;
    entry.unread = unread + extra;
    if (unread === 0) entry.myRead = Math.max(entry.myRead, lastId);
  }

  private drop(roomId: number): void {
    const entry = this.entries.get(roomId);
    if (!entry) return;
    const title = this.title(entry);
    for (const timer of entry.typing.values()) window.clearTimeout(timer);
    this.entries.delete(roomId);
    const before = this.outbox.length;
    this.outbox = this.outbox.filter((p) => p.roomId !== roomId);
    if (this.outbox.length !== before) this.saveOutbox();
    this.typingSent.delete(roomId);
    this.emit("removed", { roomId, title });
    this.emit("changed", { roomId: null });
  }

  /** The direct room with someone, created on first use. */
  async openDirect(userId: number): Promise<RoomEntry> {
    const known = this.directWith(userId);
    if (known) return known;
    const { room } = await this.session.authed((token) => api.openDirect(token, userId));
    const entry = this.upsertRoom(room);
    this.emit("changed", { roomId: null });
    return entry;
  }

  async createGroup(name: string, memberIds: number[]): Promise<RoomEntry> {
    const { room } = await this.session.authed((token) => api.createGroup(token, name, memberIds));
    const entry = this.upsertRoom(room);
    this.emit("changed", { roomId: null });
    return entry;
  }

  private onJoined(room: Room): void {
    this.upsertRoom(room);
    this.emit("changed", { roomId: room.id });
    this.emit("changed", { roomId: null });
  }

  private onLeft({ room_id: roomId, user_id: userId }: { room_id: number; user_id: number }): void {
    if (userId === this.me) {
      this.drop(roomId);
      return;
    }
    const entry = this.entries.get(roomId);
    if (!entry) return;
    entry.room = { ...entry.room, members: entry.room.members.filter((m) => m.user_id !== userId) };
    entry.readBy.delete(userId);
    this.forgetTyping(entry, userId);
    this.emit("changed", { roomId });
    this.emit("changed", { roomId: null });
  }

  // -- history ------------------------------------------------------------------------------

  /** Load the newest page of a room (first time, or again when stale). */
  async loadLatest(roomId: number): Promise<void> {
    if (this.syncing) await this.syncing; // refresh on top of a complete catch-up
    const entry = this.entries.get(roomId);
    if (!entry) return;
    let window = entry.window;
    if (window && ((window.loaded && !window.stale) || window.loading)) return;
    if (!window) window = entry.window = newWindow();
    const previousMax = this.maxId(window);
    window.loading = window.loaded ? "refresh" : "initial";
    window.error = null;
    this.emit("changed", { roomId });
    let page: MessagePage;
    try {
      page = await this.session.authed((token) =>
        api.messages(token, roomId, { limit: PAGE_SIZE }),
      );
    } catch (error) {
      this.historyFailed(roomId, window, error);
      return;
    }
    if (this.entries.get(roomId)?.window !== window) return;
    const oldest = page.messages.at(-1)?.id ?? 0;
    if (window.loaded && page.next_before !== null && previousMax < oldest) {
      // More arrived than one page since: start the window over from this page.
      window.byId.clear();
    }
    if (!window.loaded || window.byId.size === 0 || previousMax < oldest) {
      window.nextBefore = page.next_before;
    }
    for (const m of page.messages) this.addMessage(entry, m, false);
    window.loaded = true;
    window.stale = false;
    window.loading = null;
    if (entry.unread === 0 && page.messages.length) {
      entry.myRead = Math.max(entry.myRead, page.messages[0].id);
    }
    this.emit("changed", { roomId });
  }

  /** After a failed load: the newest page again, or the older page that failed. */
  retryHistory(roomId: number): void {
    const entry = this.entries.get(roomId);
    if (!entry?.window || entry.window.loading) return;
    if (entry.window.loaded) {
      entry.window.error = null;
      void this.loadOlder(roomId);
    } else {
      entry.window = null;
      void this.loadLatest(roomId);
    }
  }

  /** The next older page. */
  async loadOlder(roomId: number): Promise<void> {
    const entry = this.entries.get(roomId);
    const window = entry?.window;
    if (!entry || !window || !window.loaded || window.loading || window.nextBefore === null) return;
    const before = window.nextBefore;
    window.loading = "older";
    window.error = null;
    this.emit("changed", { roomId });
    let page: MessagePage;
    try {
      page = await this.session.authed((token) =>
        api.messages(token, roomId, { before, limit: PAGE_SIZE }),
      );
    } catch (error) {
      this.historyFailed(roomId, window, error);
      return;
    }
    if (this.entries.get(roomId)?.window !== window || window.nextBefore !== before) return;
    for (const m of page.messages) this.addMessage(entry, m, false);
    window.nextBefore = page.next_before;
    window.loading = null;
    this.emit("changed", { roomId });
  }

  private historyFailed(roomId: number, window: MessageWindow, error: unknown): void {
    if (this.entries.get(roomId)?.window !== window) return;
    window.loading = null;
    if (error instanceof ApiError && error.code === "not_found") {
      this.drop(roomId);
      return;
    }
    if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
    window.error =
      error instanceof NetworkError
        ? "Can't reach the appliance right now."
        : "Messages could not be loaded.";
    this.emit("changed", { roomId });
  }

  private maxId(window: MessageWindow): number {
    let max = 0;
    for (const id of window.byId.keys()) if (id > max) max = id;
    return max;
  }

  // -- merging messages ---------------------------------------------------------------------

  private noteLast(entry: RoomEntry, m: ChatMessage): void {
    if (!entry.last || m.id > entry.last.id) entry.last = m;
    else if (m.id === entry.last.id) entry.last = fresher(entry.last, m);
  }

  /** Add a message (from any source); true if it was not known. */
  private addMessage(entry: RoomEntry, m: ChatMessage, live: boolean): boolean {
    const own = m.sender.user_id === this.me;
    if (own) this.resolvePending(m.room_id, m.client_msg_id);
    let isNew: boolean;
    if (entry.window) {
      const had = entry.window.byId.get(m.id);
      isNew = had === undefined;
      entry.window.byId.set(m.id, had ? fresher(had, m) : m);
    } else {
      isNew = !entry.last || m.id > entry.last.id;
    }
    this.noteLast(entry, m);
    if (live && isNew && !own && !m.deleted && m.id > entry.myRead) {
      entry.unread += 1;
      entry.recentLive.push(m.id);
      if (entry.recentLive.length > RECENT_LIVE_KEEP) entry.recentLive.shift();
    }
    return isNew;
  }

  /** A message of mine acknowledged outside the outbox (a shared file's `media:uploaded`). */
  receiveOwn(m: ChatMessage): void {
    const entry = this.entries.get(m.room_id);
    if (!entry) {
      this.scheduleReload();
      return;
    }
    this.addMessage(entry, m, false);
    this.emit("changed", { roomId: m.room_id });
    this.emit("changed", { roomId: null });
  }

  private onMessage(m: ChatMessage): void {
    const entry = this.entries.get(m.room_id);
    if (!entry) {
      this.scheduleReload(); // a room we have not heard of yet
      return;
    }
    this.forgetTyping(entry, m.sender.user_id);
    this.addMessage(entry, m, true);
    this.emit("changed", { roomId: m.room_id });
    this.emit("changed", { roomId: null });
  }

  private applyEdit(m: ChatMessage): void {
    const entry = this.entries.get(m.room_id);
    if (!entry) return;
    const had = entry.window?.byId.get(m.id);
    if (had) entry.window?.byId.set(m.id, fresher(had, m));
    if (entry.last?.id === m.id) entry.last = fresher(entry.last, m);
    this.emit("changed", { roomId: m.room_id });
    this.emit("changed", { roomId: null });
  }

  private applyDelete(roomId: number, messageId: number): void {
    const entry = this.entries.get(roomId);
    if (!entry) return;
    const now = serverNow() / 1000;
    const had =
      entry.window?.byId.get(messageId) ?? (entry.last?.id === messageId ? entry.last : null);
    if (had && !had.deleted) {
      const gone = deletedCopy(had, now);
      if (entry.window?.byId.has(messageId)) entry.window.byId.set(messageId, gone);
      if (entry.last?.id === messageId) entry.last = gone;
      if (had.sender.user_id !== this.me && messageId > entry.myRead && entry.unread > 0) {
        entry.unread -= 1;
      }
    } else if (!had && entry.unread > 0 && messageId > entry.myRead) {
      this.scheduleReload(); // can't tell whether it was counted: ask
    }
    this.emit("changed", { roomId });
    this.emit("changed", { roomId: null });
  }

  // -- read receipts ------------------------------------------------------------------------

  private onRead(e: ReadEvent): void {
    const entry = this.entries.get(e.room_id);
    if (!entry) return;
    if (e.user_id !== this.me) {
      entry.readBy.set(e.user_id, Math.max(entry.readBy.get(e.user_id) ?? 0, e.message_id));
      this.emit("changed", { roomId: e.room_id });
      return;
    }
    // Read in another tab of mine.
    if (e.message_id <= entry.myRead) return;
    entry.myRead = e.message_id;
    if (entry.last && e.message_id >= entry.last.id) {
      entry.unread = 0;
    } else if (entry.window?.loaded) {
      entry.unread = [...entry.window.byId.values()].filter(
        (m) => m.id > e.message_id && m.sender.user_id !== this.me && !m.deleted,
      ).length;
    } else {
      this.scheduleReload();
    }
    this.emit("changed", { roomId: e.room_id });
    this.emit("changed", { roomId: null });
  }

  /** The position another member has surely seen: their read position or their latest reply. */
  seenBy(entry: RoomEntry, userId: number): number {
    let seen = entry.readBy.get(userId) ?? 0;
    if (entry.window) {
      for (const m of entry.window.byId.values()) {
        if (m.sender.user_id === userId && m.id > seen) seen = m.id;
      }
    }
    return seen;
  }

  /** Tell the server I've read up to the newest message, if there is anything new. */
  async markRead(roomId: number): Promise<void> {
    const entry = this.entries.get(roomId);
    const window = entry?.window;
    if (!entry || !window?.loaded || entry.readInFlight || !this.session.socket.connected) return;
    if (Date.now() < entry.readRetryAt) return;
    let newest = 0;
    let newestOthers = 0;
    for (const m of window.byId.values()) {
      if (m.id > newest) newest = m.id;
      if (m.sender.user_id !== this.me && m.id > newestOthers) newestOthers = m.id;
    }
    if (newest === 0 || newest <= entry.myRead) return;
    if (newestOthers <= entry.myRead && entry.unread === 0) return; // only my own since
    const previous = entry.myRead;
    const previousUnread = entry.unread;
    entry.readInFlight = true;
    entry.myRead = newest;
    entry.unread = 0;
    this.emit("changed", { roomId: null });
    try {
      const ack = await this.session.socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("chat:read", { room_id: roomId, message_id: newest });
      if (ack.ok) {
        entry.myRead = Math.max(entry.myRead, ack.message_id);
        // Counted by the server when it answered; live ones since may or may not be in it.
        const live = entry.recentLive.filter((id) => id > entry.myRead).length;
        entry.unread = Math.max(ack.unread, live);
      } else {
        entry.myRead = previous;
        entry.unread = previousUnread;
        entry.readRetryAt = Date.now() + READ_RETRY_MS;
        if (ack.error.code === "not_found") this.scheduleReload();
      }
    } catch {
      entry.myRead = previous; // no connection: the next visit tries again
      entry.unread = previousUnread;
    } finally {
      entry.readInFlight = false;
    }
    this.emit("changed", { roomId });
    this.emit("changed", { roomId: null });
  }

  // -- typing -------------------------------------------------------------------------------

  private onTyping(e: TypingEvent): void {
    const entry = this.entries.get(e.room_id);
    if (!entry || e.user_id === this.me) return;
    if (e.typing) {
      window.clearTimeout(entry.typing.get(e.user_id));
      const timer = window.setTimeout(() => {
        this.timers.delete(timer);
        if (entry.typing.get(e.user_id) === timer) {
          entry.typing.delete(e.user_id);
          this.emit("changed", { roomId: e.room_id });
          this.emit("changed", { roomId: null });
        }
      }, TYPING_SHOWN_MS);
      this.timers.add(timer);
      entry.typing.set(e.user_id, timer);
    } else {
      this.forgetTyping(entry, e.user_id);
    }
    this.emit("changed", { roomId: e.room_id });
    this.emit("changed", { roomId: null });
  }

  private forgetTyping(entry: RoomEntry, userId: number): void {
    const timer = entry.typing.get(userId);
    if (timer === undefined) return;
    window.clearTimeout(timer);
    this.timers.delete(timer);
    entry.typing.delete(userId);
  }

  private clearAllTyping(): void {
    let any = false;
    for (const entry of this.entries.values()) {
      for (const userId of [...entry.typing.keys()]) {
        this.forgetTyping(entry, userId);
        any = true;
      }
    }
    this.typingSent.clear();
    if (any) this.emit("changed", { roomId: null });
  }

  /** The composer's text changed: typing:true at most every 3 s, typing:false when emptied. */
  composerChanged(roomId: number, text: string): void {
    const now = Date.now();
    const last = this.typingSent.get(roomId);
    if (text.trim()) {
      if (last === undefined || now - last >= TYPING_REFRESH_MS) {
        if (this.emitTyping(roomId, true)) this.typingSent.set(roomId, now);
      }
    } else {
      this.stopTyping(roomId);
    }
  }

  /** I stopped typing there (sent, emptied, left the room). */
  stopTyping(roomId: number): void {
    if (!this.typingSent.has(roomId)) return;
    this.typingSent.delete(roomId);
    this.emitTyping(roomId, false);
  }

  private emitTyping(roomId: number, typing: boolean): boolean {
    const socket = this.session.socket;
    if (!socket.connected || !this.entries.has(roomId)) return false;
    socket.emit("chat:typing", { room_id: roomId, typing }); // no ack wanted; best effort
    return true;
  }

  // -- sending --------------------------------------------------------------------------------

  /** Queue a message and send it. The text must be trimmed, 1-4000 characters. */
  send(roomId: number, text: string): PendingMessage {
    const pending: PendingMessage = {
      clientMsgId: newClientMsgId(),
      roomId,
      text,
      createdAt: serverNow() / 1000,
      state: "queued",
      error: null,
      attempt: 0,
    };
    this.outbox.push(pending);
    this.saveOutbox();
    // The server ends my typing indicator when the message arrives (and tells the others), so
    // no typing:false here: it would only spend the small typing budget (5, then 2 a second).
    this.typingSent.delete(roomId);
    this.emit("changed", { roomId });
    this.emit("changed", { roomId: null });
    void this.transmit(pending);
    return pending;
  }

  /** Send a failed message again (same client_msg_id). */
  retry(clientMsgId: string): void {
    const pending = this.outbox.find((p) => p.clientMsgId === clientMsgId);
    if (!pending || pending.state !== "failed") return;
    pending.state = "queued";
    pending.error = null;
    this.emit("changed", { roomId: pending.roomId });
    void this.transmit(pending);
  }

  /** Give up on a message that was not sent. */
  discard(clientMsgId: string): void {
    const pending = this.outbox.find((p) => p.clientMsgId === clientMsgId);
    if (!pending || pending.state !== "failed") return;
    this.resolvePending(pending.roomId, clientMsgId);
    this.emit("changed", { roomId: pending.roomId });
    this.emit("changed", { roomId: null });
  }

  private isPending(pending: PendingMessage): boolean {
    return this.outbox.includes(pending);
  }

  private resolvePending(roomId: number, clientMsgId: string): void {
    const before = this.outbox.length;
    this.outbox = this.outbox.filter(
      (p) => !(p.roomId === roomId && p.clientMsgId === clientMsgId),
    );
    if (this.outbox.length !== before) this.saveOutbox();
  }

  private async transmit(pending: PendingMessage): Promise<void> {
    const socket = this.session.socket;
    if (this.disposed || !this.isPending(pending) || pending.state === "sending") return;
    if (!socket.connected) {
      pending.state = "queued"; // sent on the next connect
      return;
    }
    pending.state = "sending";
    const attempt = ++pending.attempt;
    let ack;
    try {
      ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("chat:message", {
        room_id: pending.roomId,
        text: pending.text,
        client_msg_id: pending.clientMsgId,
      });
    } catch {
      // Disconnected (resent on connect) or no answer in time (resent shortly, same id).
      if (pending.attempt !== attempt || !this.isPending(pending)) return;
      pending.state = "queued";
      this.emit("changed", { roomId: pending.roomId });
      if (socket.connected) {
        const timer = window.setTimeout(() => {
          this.timers.delete(timer);
          void this.transmit(pending);
        }, RESEND_DELAY_MS);
        this.timers.add(timer);
      }
      return;
    }
    if (pending.attempt !== attempt || !this.isPending(pending)) return;
    if (ack.ok) {
      const entry = this.entries.get(pending.roomId);
      if (entry) this.addMessage(entry, ack.message, false);
      else this.resolvePending(pending.roomId, pending.clientMsgId);
      this.emit("changed", { roomId: pending.roomId });
      this.emit("changed", { roomId: null });
      return;
    }
    const error = ack.error;
    if (SOCKET_UNAUTHENTICATED.has(error.code)) {
      pending.state = "queued"; // the socket is being re-authenticated: resent on connect
      return;
    }
    if (error.code === "not_found") {
      this.roomGone(pending.roomId);
      return;
    }
    pending.state = "failed";
    const failure = this.failure(error);
    // The toast says how long to wait; the message keeps a reason that does not go stale.
    pending.error =
      failure.code === "rate_limited" ? "Not sent: too many messages at once." : failure.text;
    this.saveOutbox();
    this.emit("changed", { roomId: pending.roomId });
  }

  private roomGone(roomId: number): void {
    const entry = this.entries.get(roomId);
    if (entry) this.drop(roomId);
    else {
      this.outbox = this.outbox.filter((p) => p.roomId !== roomId);
      this.saveOutbox();
    }
  }

  /** An ack error as text for people (and a toast for rate limits). */
  private failure(error: ErrorBody): ChatFailure {
    if (error.code === "rate_limited") {
      const seconds = Math.max(1, Math.ceil(error.retry_after ?? 1));
      const text = `Slow down — try again in ${seconds}s`;
      this.emit("notice", { text });
      return { code: error.code, text };
    }
    if (error.code === "invalid_request") {
      return { code: error.code, text: capitalise(error.message || "That can't be sent.") };
    }
    if (error.code === "forbidden") {
      return { code: error.code, text: "You can only change your own messages." };
    }
    if (error.code === "not_found") {
      return { code: error.code, text: "That message or conversation no longer exists." };
    }
    return { code: error.code, text: "Something went wrong. Try again." };
  }

  // -- edit and delete ------------------------------------------------------------------------

  /** Edit my message; null when done, else why not. */
  async edit(messageId: number, text: string): Promise<ChatFailure | null> {
    const socket = this.session.socket;
    if (!socket.connected) return OFFLINE;
    let ack;
    try {
      ack = await socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("chat:edit", { message_id: messageId, text });
    } catch {
      return NO_ANSWER;
    }
    if (ack.ok) {
      this.applyEdit(ack.message);
      return null;
    }
    return this.failure(ack.error);
  }

  /** Delete my message; null when done, else why not. */
  async remove(messageId: number): Promise<ChatFailure | null> {
    const socket = this.session.socket;
    if (!socket.connected) return OFFLINE;
    let ack;
    try {
      ack = await socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("chat:delete", { message_id: messageId });
    } catch {
      return NO_ANSWER;
    }
    if (ack.ok) {
      this.applyDelete(ack.room_id, ack.message_id);
      return null;
    }
    return this.failure(ack.error);
  }

  // -- (re)connecting -------------------------------------------------------------------------

  private async onConnected(): Promise<void> {
    const first = !this.connectedOnce;
    this.connectedOnce = true;
    if (!first) {
      for (const entry of this.entries.values()) {
        if (entry.window?.loaded) entry.window.stale = true;
      }
    }
    // The first connect follows the list load started with the page; later ones reload it
    // (unread counts, rooms joined while away).
    if (!first || (!this.loading && this.status.kind !== "ready")) void this.reloadRooms();
    this.flushOutbox();
    const sync = this.syncWindows().finally(() => {
      if (this.syncing === sync) this.syncing = null;
    });
    this.syncing = sync;
    await sync;
    if (this.activeRoomId !== null) await this.loadLatest(this.activeRoomId);
  }

  private flushOutbox(): void {
    for (const pending of [...this.outbox]) {
      if (pending.state !== "failed") {
        pending.state = "queued";
        void this.transmit(pending);
      }
    }
  }

  /** chat:sync with the last id of every room whose messages are loaded. */
  private async syncWindows(): Promise<void> {
    let cursors = [...this.entries.values()]
      .filter((e) => e.window?.loaded)
      .map((e) => ({ room_id: e.room.id, last_id: this.maxId(e.window as MessageWindow) }));
    for (let round = 0; cursors.length > 0 && round < 20 && !this.disposed; round++) {
      const socket = this.session.socket;
      if (!socket.connected) return;
      let ack;
      try {
        ack = await socket.timeout(ACK_TIMEOUT_MS * 2).emitWithAck("chat:sync", { rooms: cursors });
      } catch {
        return; // the next connect syncs again
      }
      if (!ack.ok) {
        if (ack.error.code === "not_found") {
          // Removed from one of them while away: the whole request fails. Drop it and retry.
          await this.reloadRooms();
          cursors = cursors.filter((c) => this.entries.has(c.room_id));
          continue;
        }
        if (ack.error.code === "rate_limited") {
          await delay(Math.max(1, ack.error.retry_after ?? 1) * 1000);
          continue;
        }
        return;
      }
      const next: Array<{ room_id: number; last_id: number }> = [];
      for (const result of ack.rooms) {
        const entry = this.entries.get(result.room_id);
        if (!entry?.window) continue;
        for (const m of result.messages) this.addMessage(entry, m, false);
        const lastId = result.messages.at(-1)?.id;
        if (result.has_more && lastId !== undefined) {
          next.push({ room_id: result.room_id, last_id: lastId });
        }
        this.emit("changed", { roomId: result.room_id });
      }
      this.emit("changed", { roomId: null });
      cursors = next;
    }
  }

  // -- the outbox in sessionStorage -----------------------------------------------------------

  private outboxKey(): string {
    return `${OUTBOX_KEY}:${this.me}`;
  }

  private saveOutbox(): void {
    try {
      const items = this.outbox.map((p) => ({
        roomId: p.roomId,
        clientMsgId: p.clientMsgId,
        text: p.text,
        createdAt: p.createdAt,
        error: p.state === "failed" ? p.error : null,
      }));
      if (items.length) sessionStorage.setItem(this.outboxKey(), JSON.stringify(items));
      else sessionStorage.removeItem(this.outboxKey());
    } catch {
      // no storage: pending messages just won't survive a reload
    }
  }

  private restoreOutbox(): void {
    try {
      const raw = sessionStorage.getItem(this.outboxKey());
      if (!raw) return;
      const items = JSON.parse(raw) as Array<Partial<PendingMessage>>;
      for (const item of items) {
        if (
          typeof item.roomId !== "number" ||
          typeof item.clientMsgId !== "string" ||
          typeof item.text !== "string" ||
          typeof item.createdAt !== "number"
        ) {
          continue;
        }
        const failed = typeof item.error === "string";
        this.outbox.push({
          roomId: item.roomId,
          clientMsgId: item.clientMsgId,
          text: item.text,
          createdAt: item.createdAt,
          state: failed ? "failed" : "queued",
          error: failed ? (item.error as string) : null,
          attempt: 0,
        });
      }
    } catch {
      // corrupt: start empty
    }
  }

  /** Stop listening. `forget` drops the outbox too (signed out). */
  dispose(forget: boolean): void {
    this.disposed = true;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    for (const timer of this.timers) window.clearTimeout(timer);
    this.timers.clear();
    window.clearTimeout(this.reloadTimer);
    if (forget) {
      this.outbox = [];
      try {
        sessionStorage.removeItem(this.outboxKey());
      } catch {
        // nothing to forget
      }
    }
    this.clearListeners();
  }
}

const SOCKET_UNAUTHENTICATED = new Set([
  "token_invalid",
  "token_expired",
  "token_revoked",
  "token_missing",
]);
const OFFLINE: ChatFailure = {
  code: "offline",
  text: "You're offline. Try again when the connection is back.",
};
const NO_ANSWER: ChatFailure = {
  code: "timeout",
  text: "The appliance didn't answer. Try again.",
};
