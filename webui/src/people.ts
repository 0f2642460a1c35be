// The people directory with live presence.
//
// GET /api/users gives everyone (with last_seen); the socket gives who is online. Once the socket's
// `presence:list` snapshot has arrived for the current connection, online/offline comes from the
// socket only (it is newer than any HTTP answer in flight); before that, from the HTTP answer.

import * as api from "./api.ts";
import { ApiError, NetworkError } from "./api.ts";
import { Emitter } from "./emitter.ts";
import type { DirectoryUser, OnlineUser } from "./protocol.ts";
import type { Session } from "./session.ts";

export interface Person {
  userId: number;
  username: string;
  isAdmin: boolean;
  online: boolean;
  /** Unix seconds, server clock; null when never seen. */
  lastSeen: number | null;
}

export type DirectoryStatus =
  | { kind: "loading" }
  | { kind: "ready" }
  | { kind: "error"; message: string };

export interface PeopleEvents extends Record<string, unknown> {
  changed: undefined;
}

export class People extends Emitter<PeopleEvents> {
  private readonly session: Session;
  private readonly byId = new Map<number, Person>();
  private liveSnapshot = false;
  private loadSeq = 0;
  private unsubscribe: Array<() => void> = [];
  status: DirectoryStatus = { kind: "loading" };

  constructor(session: Session) {
    super();
    this.session = session;
    const socket = session.socket;
    const onList = ({ users }: { users: OnlineUser[] }): void => this.applySnapshot(users);
    const onOnline = (user: OnlineUser): void => this.applyOnline(user);
    const onOffline = (user: OnlineUser & { last_seen: number }): void => this.applyOffline(user);
    socket.on("presence:list", onList);
    socket.on("user_online", onOnline);
    socket.on("user_offline", onOffline);
    this.unsubscribe.push(
      () => socket.off("presence:list", onList),
      () => socket.off("user_online", onOnline),
      () => socket.off("user_offline", onOffline),
      session.on("connected", () => void this.reload()),
      session.on("state", (state) => {
        if (state !== "connected") this.liveSnapshot = false;
      }),
    );
  }

  /** Everyone but me: online first, then by name. */
  list(): Person[] {
    const me = this.session.me.user_id;
    return [...this.byId.values()]
      .filter((p) => p.userId !== me)
      .sort(
        (a, b) =>
          Number(b.online) - Number(a.online) ||
          a.username.localeCompare(b.username, undefined, { sensitivity: "base" }),
      );
  }

  get(userId: number): Person | undefined {
    return this.byId.get(userId);
  }

  /** (Re)load the directory over HTTP. */
  async reload(): Promise<void> {
    const seq = ++this.loadSeq;
    if (this.status.kind === "error") {
      this.status = { kind: "loading" };
      this.emit("changed", undefined);
    }
    try {
      const { users } = await this.session.authed((token) => api.users(token));
      if (seq !== this.loadSeq) return;
      this.applyDirectory(users);
      this.status = { kind: "ready" };
    } catch (error) {
      if (seq !== this.loadSeq) return;
      if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
      if (this.byId.size > 0 && error instanceof NetworkError) return; // keep what we have
      this.status = {
        kind: "error",
        message:
          error instanceof NetworkError
            ? "Can't reach the appliance right now."
            : "The list of people could not be loaded.",
      };
    }
    this.emit("changed", undefined);
  }

  dispose(): void {
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.clearListeners();
  }

  // -- merging ----------------------------------------------------------------------------

  private applyDirectory(users: DirectoryUser[]): void {
    const seen = new Set<number>();
    for (const user of users) {
      seen.add(user.user_id);
      const known = this.byId.get(user.user_id);
      this.byId.set(user.user_id, {
        userId: user.user_id,
        username: user.username,
        isAdmin: user.is_admin,
        online: this.liveSnapshot && known ? known.online : user.online,
        lastSeen: latest(known?.lastSeen ?? null, user.last_seen),
      });
    }
    // Accounts that no longer exist.
    for (const id of [...this.byId.keys()]) if (!seen.has(id)) this.byId.delete(id);
  }

  private ensure(user: OnlineUser): Person {
    let person = this.byId.get(user.user_id);
    if (!person) {
      // Someone the directory did not have yet (a new account): add, then fetch details.
      person = {
        userId: user.user_id,
        username: user.username,
        isAdmin: false,
        online: false,
        lastSeen: null,
      };
      this.byId.set(user.user_id, person);
      if (this.status.kind === "ready") void this.reload();
    }
    return person;
  }

  private applySnapshot(users: OnlineUser[]): void {
    const online = new Set<number>();
    for (const user of users) {
      online.add(user.user_id);
      this.ensure(user).online = true;
    }
    for (const person of this.byId.values()) if (!online.has(person.userId)) person.online = false;
    this.liveSnapshot = true;
    this.emit("changed", undefined);
  }

  private applyOnline(user: OnlineUser): void {
    this.ensure(user).online = true;
    this.emit("changed", undefined);
  }

  private applyOffline(user: OnlineUser & { last_seen: number }): void {
    const person = this.ensure(user);
    person.online = false;
    person.lastSeen = latest(person.lastSeen, user.last_seen);
    this.emit("changed", undefined);
  }
}

function latest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}
