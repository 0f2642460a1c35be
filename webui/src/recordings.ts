// Recorded calls (docs/protocol.md, "Recording"): the list of GET /api/recordings, short-lived
// playback/download URLs (the JSON form of GET /api/recordings/{id}), and deleting.
//
// The list is loaded when first asked for and kept fresh: again on `recording:ready` (a file is
// done), on `call:recording` stopped (a new one is processing) and after a reconnect.

import * as api from "./api.ts";
import { Emitter } from "./emitter.ts";
import type { CallPeer, CallRecordingEvent, Recording } from "./protocol.ts";
import type { Session } from "./session.ts";

const URL_MARGIN_MS = 30_000; // a cached URL must have at least this much life left

export interface RecordingsEvents extends Record<string, unknown> {
  changed: undefined;
  /** A recording of one of my calls is ready to play (null: it is not in the list). */
  ready: { recording: Recording | null };
}

export class Recordings extends Emitter<RecordingsEvents> {
  private readonly session: Session;
  private items: Recording[] | null = null;
  private failure: unknown = null;
  private running: Promise<void> | null = null;
  private again = false;
  private readonly urls = new Map<string, { url: string; expiresAt: number }>();
  private unsubscribe: Array<() => void> = [];
  private disposed = false;

  constructor(session: Session) {
    super();
    this.session = session;
    const socket = session.socket;
    const onReady = (data: { recording_id: string; call_id: string }): void =>
      void this.onReady(data.recording_id);
    const onRecording = (data: CallRecordingEvent): void => {
      if (data.state === "stopped" && this.items !== null) void this.reload();
    };
    socket.on("recording:ready", onReady);
    socket.on("call:recording", onRecording);
    this.unsubscribe.push(
      () => socket.off("recording:ready", onReady),
      () => socket.off("call:recording", onRecording),
      session.on("connected", () => {
        if (this.items !== null || this.failure !== null) void this.reload();
      }),
    );
  }

  /** Newest first; null until loaded. */
  get list(): Recording[] | null {
    return this.items;
  }

  /** Why the last load failed, while the list is not known. */
  get error(): unknown {
    return this.items === null ? this.failure : null;
  }

  get loading(): boolean {
    return this.running !== null;
  }

  /** Load (or load again) the list. Single-flight; a call during a load loads once more after. */
  reload(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.failure = null;
    this.running = (async () => {
      do {
        this.again = false;
        try {
          const answer = await this.session.authed((token) => api.recordings(token));
          this.items = answer.recordings;
          this.failure = null;
        } catch (error) {
          this.failure = error;
        }
      } while (this.again && !this.disposed);
      this.running = null;
      this.changed();
    })();
    this.changed();
    return this.running;
  }

  /** The other person of the call (the first one not me). */
  peerOf(recording: Recording): CallPeer {
    const me = this.session.me.user_id;
    return (
      recording.participants.find((p) => p.user_id !== me) ??
      recording.participants[0] ??
      recording.started_by
    );
  }

  /** Started from this account. */
  mine(recording: Recording): boolean {
    return recording.started_by.user_id === this.session.me.user_id;
  }

  /** A URL to play or download it; `fresh` skips the cache (the last one failed to load). */
  async url(id: string, fresh = false): Promise<string> {
    const cached = this.urls.get(id);
    if (!fresh && cached && cached.expiresAt - Date.now() > URL_MARGIN_MS) return cached.url;
    const started = Date.now();
    const answer = await this.session.authed((token) => api.recordingUrl(token, id));
    this.urls.set(id, { url: answer.url, expiresAt: started + answer.expires_in * 1000 });
    return answer.url;
  }

  /** Delete it (for both participants). Throws ApiError / NetworkError. */
  async remove(id: string): Promise<void> {
    await this.session.authed((token) => api.deleteRecording(token, id));
    this.urls.delete(id);
    if (this.items) this.items = this.items.filter((r) => r.id !== id);
    this.changed();
  }

  private async onReady(id: string): Promise<void> {
    await this.reload();
    if (this.disposed) return;
    this.emit("ready", { recording: this.items?.find((r) => r.id === id) ?? null });
  }

  private changed(): void {
    if (!this.disposed) this.emit("changed", undefined);
  }

  dispose(): void {
    this.disposed = true;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.clearListeners();
  }
}
