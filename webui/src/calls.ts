// 1:1 audio/video calls (docs/protocol.md, "Calls"): the call flow, the peer connection and the
// local camera and microphone.
//
// - Caller: getUserMedia, `call:start`, ringing; on `call:accepted` a peer connection with the
//   ICE servers of GET /api/turn, its tracks, and the offer. Callee: `call:incoming` rings on
//   every tab; accepting takes the camera/microphone and builds the peer connection first, then
//   sends `call:accepted`, so the offer always finds it ready.
// - Signaling (offer, answer, trickled candidates) runs in order through one promise chain per
//   call; remote candidates wait until the remote description is set.
// - A dropped socket during a call: `call:resume` on reconnect, then the caller restarts ICE. The
//   same when the peer comes back (`call:resumed`) or ICE fails. TURN credentials are fetched
//   again before they expire and given to the connection with setConfiguration.
// - Ending, however it happens, stops every local track and closes the connection.
// - Recording (`call:record`, `call:recording`): while the call is recorded, a second connection
//   (recorder-link.ts) sends the same local tracks to the appliance's recorder; the peer-to-peer
//   connection is not touched. Both sides show who started it; failures are told in the call.

import * as api from "./api.ts";
import { serverNow } from "./api.ts";
import { Emitter } from "./emitter.ts";
import type {
  CallEndReason,
  CallMedia,
  CallPeer,
  CallRecordingEvent,
  CandidateBody,
  SdpBody,
  TurnConfig,
} from "./protocol.ts";
import { RecorderLink } from "./recorder-link.ts";
import type { Session } from "./session.ts";

const ACK_TIMEOUT_MS = 10_000;
const ENDED_SHOWN_MS = 8_000;
const RING_GIVE_UP_MS = 60_000; // the server ends ringing after 30 s; this is only a backstop
const TURN_REFRESH_MARGIN_S = 60;
const VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30 },
};

export type CallPhase = "outgoing" | "incoming" | "connecting" | "active" | "ended";

export interface CallEnd {
  reason: CallEndReason | "media_error" | "failed" | "local";
  title: string;
  text: string;
  /** Seconds of talk, when the call was answered. */
  duration: number | null;
}

/** The call is being recorded (or the recorder is getting ready). */
export interface CallRecording {
  state: "starting" | "recording";
  recordingId: string | null;
  /** Who started it. */
  by: CallPeer | null;
  /** Started from this side. */
  mine: boolean;
  /** When the recorder had both sides' media (browser clock, ms); null while starting. */
  since: number | null;
}

const RECORD_ERRORS: Record<string, string> = {
  recording_disabled: "Recording is turned off on this appliance.",
  unavailable: "Recording isn't available right now. Try again in a moment.",
  forbidden: "You can't record this call.",
  conflict: "The call can be recorded once it is connected.",
  rate_limited: "Slow down — try again in a moment.",
};

const RECORD_FAILURES: Record<string, string> = {
  recorder_lost: "the recording service stopped",
  timeout: "the recorder didn't receive the call in time",
  store_unavailable: "file storage is unavailable",
  disk_full: "the appliance's disk is full",
  recorder_error: "the recorder ran into a problem",
  unavailable: "the recording service is unavailable",
};

export interface Call {
  phase: CallPhase;
  role: "caller" | "callee";
  callId: string | null;
  peer: CallPeer;
  media: CallMedia;
  /** Caller side before the ack: "preparing" (camera) / "starting"; then "ringing". */
  step: "preparing" | "starting" | "ringing" | null;
  local: MediaStream | null;
  remote: MediaStream | null;
  /** The remote video track is muted (the peer turned their camera off). */
  remoteVideoMuted: boolean;
  micMuted: boolean;
  cameraOff: boolean;
  connection: RTCPeerConnectionState;
  /** Whose connection to the appliance is down, if anyone's. */
  reconnecting: "self" | "peer" | null;
  /** When the call was answered / first connected (browser clock, ms). */
  answeredAt: number | null;
  connectedAt: number | null;
  end: CallEnd | null;
  /** The recording in progress, if any. */
  recording: CallRecording | null;
  /** A `call:record` is out, its ack not back yet. */
  recordBusy: boolean;
  /** A recording of this call was stopped (it will show up in Recordings). */
  recorded: boolean;
}

interface Internals {
  call: Call;
  pc: RTCPeerConnection | null;
  turn: TurnConfig | null;
  chain: Promise<void>;
  pendingCandidates: Array<CandidateBody | null>;
  videoSender: RTCRtpSender | null;
  timers: Set<number>;
  /** Events for this caller's call that came before the call:start ack. */
  early: Array<() => void>;
  abandoned: boolean;
  /** The connection to the recorder while the call is recorded. */
  recorder: RecorderLink | null;
  /** The recording whose recorder connection is being set up (TURN being fetched). */
  recorderOpening: string | null;
  /** Recordings already stopped or failed (late events about them are ignored). */
  finishedRecordings: Set<string>;
}

export interface CallEvents extends Record<string, unknown> {
  changed: undefined;
  /** Something to tell in a toast (a missed call). */
  notice: { text: string };
  /** Something to tell on the call screen (recording started by the peer, failed...). */
  callNotice: { text: string; tone: "info" | "recording" | "error" };
}

function mediaError(error: unknown): string {
  const name = error instanceof DOMException ? error.name : "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Allow access to your camera and microphone in the browser, then try again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No camera or microphone was found.";
  }
  if (name === "NotReadableError") return "Your camera or microphone is in use by another app.";
  if (!navigator.mediaDevices) return "Calls need a secure (https) connection to the appliance.";
  return "Your camera or microphone could not be started.";
}

export class Calls extends Emitter<CallEvents> {
  private readonly session: Session;
  private current: Internals | null = null;
  private unsubscribe: Array<() => void> = [];
  private endedTimer: number | undefined;
  private disposed = false;
  /** Whether the appliance records calls (GET /api/site); null until known. */
  private recordingAllowed: boolean | null = null;

  constructor(session: Session) {
    super();
    this.session = session;
    const socket = session.socket;
    const handlers = {
      "call:incoming": (d: { call_id: string; caller: CallPeer; media: CallMedia }) =>
        this.onIncoming(d.call_id, d.caller, d.media),
      "call:accepted": (d: { call_id: string }) => this.onAccepted(d.call_id),
      "call:rejected": (d: { call_id: string; reason: string }) =>
        this.onRemoteEnd(d.call_id, d.reason, true),
      "call:end": (d: { call_id: string; reason: string }) =>
        this.onRemoteEnd(d.call_id, d.reason, false),
      "call:reconnecting": (d: { call_id: string; user_id: number }) =>
        this.onPeerConnection(d.call_id, d.user_id, false),
      "call:resumed": (d: { call_id: string; user_id: number }) =>
        this.onPeerConnection(d.call_id, d.user_id, true),
      "webrtc:offer": (d: { call_id: string; offer: SdpBody }) => this.onOffer(d.call_id, d.offer),
      "webrtc:answer": (d: { call_id: string; answer: SdpBody }) =>
        this.onAnswer(d.call_id, d.answer),
      "webrtc:ice-candidate": (d: { call_id: string; candidate: CandidateBody | null }) =>
        this.onCandidate(d.call_id, d.candidate),
      "call:recording": (d: CallRecordingEvent) => this.onRecording(d),
      "recorder:answer": (d: { call_id: string; answer: SdpBody }) =>
        this.byId(d.call_id)?.recorder?.answer(d.answer),
      "recorder:ice-candidate": (d: { call_id: string; candidate: CandidateBody | null }) =>
        this.byId(d.call_id)?.recorder?.candidate(d.candidate),
    } as const;
    for (const [name, handler] of Object.entries(handlers)) {
      socket.on(name as "call:end", handler as never);
      this.unsubscribe.push(() => socket.off(name as "call:end", handler as never));
    }
    this.unsubscribe.push(
      session.on("state", (state) => {
        if (state !== "connected") this.onSocketDown();
      }),
      session.on("connected", () => void this.onSocketUp()),
    );
  }

  /** The call on this tab (ringing, in progress or just ended), if any. */
  get call(): Call | null {
    return this.current?.call ?? null;
  }

  /** Busy with a call (not counting one that just ended). */
  get busy(): boolean {
    const phase = this.current?.call.phase;
    return phase !== undefined && phase !== "ended";
  }

  /** Whether calls may be recorded here: false hides the record button. */
  get recordingEnabled(): boolean | null {
    return this.recordingAllowed;
  }

  set recordingEnabled(value: boolean | null) {
    if (value === this.recordingAllowed) return;
    this.recordingAllowed = value;
    this.changed();
  }

  private changed(): void {
    if (!this.disposed) this.emit("changed", undefined);
  }

  private isCurrent(state: Internals): boolean {
    return this.current === state && state.call.phase !== "ended";
  }

  private byId(callId: string): Internals | null {
    const state = this.current;
    return state && state.call.callId === callId && state.call.phase !== "ended" ? state : null;
  }

  private newCall(role: Call["role"], peer: CallPeer, media: CallMedia, phase: CallPhase): Internals {
    window.clearTimeout(this.endedTimer);
    const state: Internals = {
      call: {
        phase,
        role,
        callId: null,
        peer,
        media,
        step: null,
        local: null,
        remote: null,
        remoteVideoMuted: false,
        micMuted: false,
        cameraOff: false,
        connection: "new",
        reconnecting: null,
        answeredAt: null,
        connectedAt: null,
        end: null,
        recording: null,
        recordBusy: false,
        recorded: false,
      },
      pc: null,
      turn: null,
      chain: Promise.resolve(),
      pendingCandidates: [],
      videoSender: null,
      timers: new Set(),
      early: [],
      abandoned: false,
      recorder: null,
      recorderOpening: null,
      finishedRecordings: new Set(),
    };
    this.current = state;
    return state;
  }

  private later(state: Internals, ms: number, run: () => void): void {
    const timer = window.setTimeout(() => {
      state.timers.delete(timer);
      run();
    }, ms);
    state.timers.add(timer);
  }

  // -- starting and answering ----------------------------------------------------------------

  /** Call someone (from a button). */
  async start(peer: CallPeer, media: CallMedia): Promise<void> {
    if (this.busy) return;
    const state = this.newCall("caller", peer, media, "outgoing");
    const call = state.call;
    call.step = "preparing";
    this.changed();
    try {
      call.local = await this.getMedia(media);
    } catch (error) {
      this.finish(state, "media_error", "Can't start the call", mediaError(error));
      return;
    }
    if (!this.isCurrent(state)) {
      this.stopTracks(call.local);
      return;
    }
    call.step = "starting";
    this.changed();
    const socket = this.session.socket;
    if (!socket.connected) {
      this.finish(state, "failed", "Can't start the call", "You're offline right now.");
      return;
    }
    let ack;
    try {
      ack = await socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("call:start", { callee_id: peer.user_id, media });
    } catch {
      this.finish(state, "failed", "Can't start the call", "The appliance didn't answer.");
      return;
    }
    if (ack.ok && state.abandoned) {
      // Cancelled while the request was out: end it on the server too.
      socket.emit("call:end", { call_id: ack.call_id }, () => undefined);
      return;
    }
    if (!this.isCurrent(state)) return;
    if (!ack.ok) {
      const code = ack.error.code;
      const text =
        code === "unavailable"
          ? `${peer.username} is not online.`
          : code === "conflict"
            ? "You're already in a call on another tab or device."
            : code === "rate_limited"
              ? "Too many call attempts. Wait a moment and try again."
              : code === "not_found"
                ? `${peer.username} no longer exists.`
                : "The call could not be started.";
      this.finish(state, code === "unavailable" ? "unavailable" : "failed", "Can't call", text);
      return;
    }
    call.callId = ack.call_id;
    call.step = "ringing";
    this.changed();
    for (const replay of state.early.splice(0)) replay();
    if (this.isCurrent(state)) void this.fetchTurn(state).catch(() => undefined); // warm up
  }

  private getMedia(media: CallMedia): Promise<MediaStream> {
    if (!navigator.mediaDevices?.getUserMedia) {
      return Promise.reject(new Error("mediaDevices unavailable"));
    }
    return navigator.mediaDevices.getUserMedia({
      audio: media.audio ? { echoCancellation: true, noiseSuppression: true } : false,
      video: media.video ? VIDEO : false,
    });
  }

  private onIncoming(callId: string, caller: CallPeer, media: CallMedia): void {
    if (this.busy) return; // the server answers "busy" for calls while in one
    const state = this.newCall("callee", caller, media, "incoming");
    state.call.callId = callId;
    this.later(state, RING_GIVE_UP_MS, () => {
      if (this.isCurrent(state) && state.call.phase === "incoming") this.dismiss();
    });
    this.changed();
  }

  /** Answer the ringing call (this tab takes it). */
  async accept(): Promise<void> {
    const state = this.current;
    if (!state || state.call.phase !== "incoming" || state.call.callId === null) return;
    const call = state.call;
    const callId = call.callId as string;
    call.phase = "connecting";
    this.changed();
    let turn: TurnConfig;
    try {
      const [local, config] = await Promise.all([
        this.getMedia(call.media).catch((error: unknown) => {
          throw new MediaFailure(error);
        }),
        this.fetchTurn(state),
      ]);
      call.local = local;
      turn = config;
    } catch (error) {
      if (!this.isCurrent(state)) return;
      // Don't leave the caller ringing: decline, and say why here.
      this.session.socket.emit("call:rejected", { call_id: callId }, () => undefined);
      if (error instanceof MediaFailure) {
        this.finish(state, "media_error", "Can't answer", mediaError(error.cause));
      } else {
        this.finish(state, "failed", "Can't answer", "The call service is unavailable.");
      }
      return;
    }
    if (!this.isCurrent(state)) {
      this.stopTracks(call.local);
      return;
    }
    this.createPeer(state, turn);
    this.changed();
    let ack;
    try {
      ack = await this.session.socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("call:accepted", { call_id: callId });
    } catch {
      this.finish(state, "failed", "Call failed", "The appliance didn't answer.");
      return;
    }
    if (!this.isCurrent(state)) return;
    if (!ack.ok) {
      const elsewhere = ack.error.code === "conflict";
      this.finish(
        state,
        elsewhere ? "answered_elsewhere" : "failed",
        elsewhere ? "Answered elsewhere" : "Call ended",
        elsewhere ? "The call was answered on another device." : "The call is no longer available.",
      );
      return;
    }
    call.answeredAt = Date.now();
    this.changed();
  }

  /** Turn the ringing call down. */
  decline(): void {
    const state = this.current;
    if (!state || state.call.phase !== "incoming" || state.call.callId === null) return;
    this.session.socket.emit("call:rejected", { call_id: state.call.callId }, () => undefined);
    this.dismiss();
  }

  /** Hang up, or cancel a call that is still ringing. */
  hangUp(): void {
    const state = this.current;
    if (!state || state.call.phase === "ended") return;
    const call = state.call;
    if (call.phase === "incoming") {
      this.decline();
      return;
    }
    if (call.callId !== null) {
      this.session.socket.emit("call:end", { call_id: call.callId }, () => undefined);
    } else {
      state.abandoned = true; // the start ack will be answered with call:end
    }
    const answered = call.answeredAt !== null;
    this.finish(
      state,
      "local",
      answered ? "Call ended" : "Call cancelled",
      answered ? `You ended the call with ${call.peer.username}.` : "",
    );
  }

  // -- the connection ---------------------------------------------------------------------------

  private async fetchTurn(state: Internals): Promise<TurnConfig> {
    const turn = await this.session.authed((token) => api.turn(token));
    state.turn = turn;
    if (state.pc) this.scheduleTurnRefresh(state);
    return turn;
  }

  private turnFresh(state: Internals): boolean {
    const turn = state.turn;
    return turn !== null && turn.expires_at - serverNow() / 1000 > TURN_REFRESH_MARGIN_S;
  }

  private scheduleTurnRefresh(state: Internals): void {
    const turn = state.turn;
    if (!turn) return;
    const due = (turn.expires_at - TURN_REFRESH_MARGIN_S) * 1000 - serverNow();
    this.later(state, Math.max(5_000, due), () => void this.refreshTurn(state));
  }

  /** New TURN credentials for the connection (used by later ICE restarts). */
  private async refreshTurn(state: Internals): Promise<void> {
    if (!this.isCurrent(state) || !state.pc) return;
    try {
      const turn = await this.session.authed((token) => api.turn(token));
      if (!this.isCurrent(state) || !state.pc) return;
      state.turn = turn;
      state.pc.setConfiguration({
        ...state.pc.getConfiguration(),
        iceServers: turn.iceServers,
        iceTransportPolicy: turn.iceTransportPolicy,
      });
      this.scheduleTurnRefresh(state);
    } catch {
      this.later(state, 15_000, () => void this.refreshTurn(state)); // try again soon
    }
  }

  private createPeer(state: Internals, turn: TurnConfig): void {
    const call = state.call;
    const pc = new RTCPeerConnection({
      iceServers: turn.iceServers,
      iceTransportPolicy: turn.iceTransportPolicy,
    });
    state.pc = pc;
    this.scheduleTurnRefresh(state);
    const local = call.local;
    if (local) {
      for (const track of local.getTracks()) {
        const sender = pc.addTrack(track, local);
        if (track.kind === "video") state.videoSender = sender;
      }
    }
    pc.addEventListener("icecandidate", (event) => {
      if (!this.isCurrent(state)) return;
      const candidate = event.candidate ? (event.candidate.toJSON() as CandidateBody) : null;
      if (candidate && !candidate.candidate) return; // an empty end-of-generation marker
      this.signal(state, "webrtc:ice-candidate", { candidate });
    });
    pc.addEventListener("track", (event) => {
      if (!this.isCurrent(state)) return;
      const stream = event.streams[0] ?? call.remote ?? new MediaStream();
      if (!stream.getTracks().includes(event.track)) stream.addTrack(event.track);
      call.remote = stream;
      if (event.track.kind === "video") {
        const track = event.track;
        const update = (): void => {
          if (call.remoteVideoMuted === track.muted) return;
          call.remoteVideoMuted = track.muted;
          this.changed();
        };
        track.addEventListener("mute", update);
        track.addEventListener("unmute", update);
      }
      this.changed();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!this.isCurrent(state)) return;
      call.connection = pc.connectionState;
      if (pc.connectionState === "connected") {
        call.phase = "active";
        call.connectedAt ??= Date.now();
      } else if (pc.connectionState === "failed" && call.role === "caller") {
        void this.restartIce(state);
      }
      this.changed();
    });
  }

  /** Send a signaling event of this call; failures are left to ICE restarts. */
  private signal(
    state: Internals,
    event: "webrtc:offer" | "webrtc:answer" | "webrtc:ice-candidate",
    body: { offer: SdpBody } | { answer: SdpBody } | { candidate: CandidateBody | null },
  ): void {
    const callId = state.call.callId;
    if (callId === null || !this.session.socket.connected) return;
    this.session.socket.emit(event as "webrtc:offer", { call_id: callId, ...body } as never, () =>
      undefined,
    );
  }

  /** Run signaling steps of a call one after another. */
  private enqueue(state: Internals, step: (pc: RTCPeerConnection) => Promise<void>): void {
    state.chain = state.chain.then(async () => {
      if (!this.isCurrent(state) || !state.pc) return;
      try {
        await step(state.pc);
      } catch (error) {
        if (this.isCurrent(state)) console.warn("call signaling step failed", error);
      }
    });
  }

  private makeOffer(state: Internals, iceRestart: boolean): void {
    this.enqueue(state, async (pc) => {
      if (iceRestart && !this.turnFresh(state)) await this.refreshTurn(state);
      const offer = await pc.createOffer(iceRestart ? { iceRestart: true } : undefined);
      await pc.setLocalDescription(offer);
      const sdp = pc.localDescription?.sdp ?? offer.sdp ?? "";
      this.signal(state, "webrtc:offer", { offer: { type: "offer", sdp } });
    });
  }

  private restartIce(state: Internals): void {
    if (state.call.role !== "caller" || !state.pc || state.pc.signalingState === "closed") return;
    this.makeOffer(state, true);
  }

  /** My call:start is out and its ack (with the call id) not back yet. */
  private awaitingStart(state: Internals | null): state is Internals {
    return (
      state !== null &&
      state.call.role === "caller" &&
      state.call.phase === "outgoing" &&
      state.call.callId === null &&
      !state.abandoned
    );
  }

  private onAccepted(callId: string): void {
    const state = this.current;
    if (this.awaitingStart(state)) {
      state.early.push(() => this.onAccepted(callId));
      return;
    }
    const found = this.byId(callId);
    if (!found || found.call.role !== "caller" || found.call.phase !== "outgoing") return;
    const call = found.call;
    call.phase = "connecting";
    call.step = null;
    call.answeredAt = Date.now();
    this.changed();
    void (async () => {
      let turn: TurnConfig;
      try {
        turn = this.turnFresh(found) && found.turn ? found.turn : await this.fetchTurn(found);
      } catch {
        if (!this.isCurrent(found)) return;
        this.session.socket.emit("call:end", { call_id: callId }, () => undefined);
        this.finish(found, "failed", "Call failed", "The call service is unavailable.");
        return;
      }
      if (!this.isCurrent(found)) return;
      this.createPeer(found, turn);
      this.makeOffer(found, false);
    })();
  }

  private onOffer(callId: string, offer: SdpBody): void {
    const state = this.byId(callId);
    if (!state || state.call.role !== "callee") return;
    this.enqueue(state, async (pc) => {
      await pc.setRemoteDescription(offer);
      await this.flushCandidates(state, pc);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      const sdp = pc.localDescription?.sdp ?? answer.sdp ?? "";
      this.signal(state, "webrtc:answer", { answer: { type: "answer", sdp } });
    });
  }

  private onAnswer(callId: string, answer: SdpBody): void {
    const state = this.byId(callId);
    if (!state || state.call.role !== "caller") return;
    this.enqueue(state, async (pc) => {
      if (pc.signalingState !== "have-local-offer") return; // a stale answer
      await pc.setRemoteDescription(answer);
      await this.flushCandidates(state, pc);
    });
  }

  private onCandidate(callId: string, candidate: CandidateBody | null): void {
    const state = this.byId(callId);
    if (!state) return;
    if (!state.pc || !state.pc.remoteDescription) {
      state.pendingCandidates.push(candidate);
      return;
    }
    this.enqueue(state, (pc) => this.addCandidate(pc, candidate));
  }

  private async flushCandidates(state: Internals, pc: RTCPeerConnection): Promise<void> {
    for (const candidate of state.pendingCandidates.splice(0)) {
      await this.addCandidate(pc, candidate);
    }
  }

  private async addCandidate(pc: RTCPeerConnection, candidate: CandidateBody | null): Promise<void> {
    try {
      // null: the peer has no more candidates (end of candidates).
      await pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      // A candidate of an older ICE generation after a restart: harmless.
      if (candidate) console.warn("ICE candidate refused", error);
    }
  }

  // -- in the call -------------------------------------------------------------------------------

  toggleMic(): void {
    const call = this.current?.call;
    if (!call?.local || call.phase === "ended") return;
    call.micMuted = !call.micMuted;
    for (const track of call.local.getAudioTracks()) track.enabled = !call.micMuted;
    this.changed();
  }

  /** Camera off releases the camera (its light goes off); on takes it again. */
  async toggleCamera(): Promise<void> {
    const state = this.current;
    const call = state?.call;
    if (!state || !call?.local || call.phase === "ended" || !call.media.video) return;
    if (!call.cameraOff) {
      call.cameraOff = true;
      for (const track of call.local.getVideoTracks()) {
        track.stop();
        call.local.removeTrack(track);
      }
      await state.videoSender?.replaceTrack(null).catch(() => undefined);
      await state.recorder?.replaceVideo(null);
      this.changed();
      return;
    }
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: VIDEO });
    } catch (error) {
      this.emit("notice", { text: mediaError(error) });
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!this.isCurrent(state) || !call.local || !track) {
      this.stopTracks(stream);
      return;
    }
    call.local.addTrack(track);
    await state.videoSender?.replaceTrack(track).catch(() => undefined);
    await state.recorder?.replaceVideo(track);
    call.cameraOff = false;
    this.changed();
  }

  // -- recording ---------------------------------------------------------------------------------

  /** Start recording the call, or stop the recording in progress. */
  async toggleRecording(): Promise<void> {
    const state = this.current;
    const call = state?.call;
    if (!state || !call || call.callId === null || call.phase === "ended" || call.recordBusy) return;
    const socket = this.session.socket;
    if (!socket.connected) {
      this.callNotice("You're offline right now. Try again when the connection is back.", "error");
      return;
    }
    const action = call.recording ? "stop" : "start";
    call.recordBusy = true;
    this.changed();
    let ack;
    try {
      ack = await socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("call:record", { call_id: call.callId, action });
    } catch {
      call.recordBusy = false;
      if (this.isCurrent(state)) {
        this.callNotice("The appliance didn't answer. Try again.", "error");
        this.changed();
      }
      return;
    }
    call.recordBusy = false;
    if (!this.isCurrent(state)) return;
    if (!ack.ok) {
      const fallback =
        action === "start" ? "The recording could not be started." : "The recording could not be stopped.";
      this.callNotice(RECORD_ERRORS[ack.error.code] ?? (ack.error.message || fallback), "error");
      if (ack.error.code === "recording_disabled") this.recordingAllowed = false;
    } else if (
      action === "start" &&
      call.recording === null &&
      (ack.state === "starting" || ack.state === "recording") &&
      !(ack.recording_id !== null && state.finishedRecordings.has(ack.recording_id))
    ) {
      // The ack may beat the `call:recording` event: show it at once.
      call.recording = {
        state: ack.state,
        recordingId: ack.recording_id,
        by: { user_id: this.session.me.user_id, username: this.session.me.username },
        mine: true,
        since: ack.state === "recording" ? Date.now() : null,
      };
      this.openRecorder(state);
    }
    this.changed();
  }

  private callNotice(text: string, tone: CallEvents["callNotice"]["tone"]): void {
    if (!this.disposed) this.emit("callNotice", { text, tone });
  }

  private onRecording(event: CallRecordingEvent): void {
    const state = this.byId(event.call_id);
    if (!state) return;
    const call = state.call;
    const me = this.session.me.user_id;
    const id = event.recording_id;
    if (event.state === "starting" || event.state === "recording") {
      if (id !== null && state.finishedRecordings.has(id)) return; // late news of an old one
      const previous = call.recording;
      const same = previous !== null && previous.recordingId === id;
      const by = event.by ?? (same ? previous.by : null);
      const mine = by?.user_id === me;
      call.recording = {
        state: event.state,
        recordingId: id,
        by,
        mine,
        since: event.state === "recording" ? ((same ? previous.since : null) ?? Date.now()) : null,
      };
      if (!same && !mine) {
        const name = by?.username ?? call.peer.username;
        this.callNotice(`${name} started recording this call`, "recording");
      }
      this.openRecorder(state);
      this.changed();
      return;
    }
    if (id !== null) {
      if (state.finishedRecordings.has(id)) return;
      state.finishedRecordings.add(id);
    }
    const current = call.recording;
    if (current && id !== null && current.recordingId !== null && current.recordingId !== id) {
      return; // about another recording than the one on
    }
    call.recording = null;
    this.closeRecorder(state);
    if (event.state === "stopped") {
      call.recorded = true;
      if (event.by?.user_id === me) {
        this.callNotice("Recording stopped. It will be in Recordings shortly.", "info");
      } else if (event.by) {
        this.callNotice(
          `${event.by.username} stopped recording. It will be in Recordings shortly.`,
          "info",
        );
      }
    } else {
      const why = RECORD_FAILURES[event.reason ?? ""] ?? "something went wrong";
      this.callNotice(`Recording failed: ${why}. The call goes on.`, "error");
    }
    this.changed();
  }

  /** Connect to the recorder for the recording on, unless already done. */
  private openRecorder(state: Internals): void {
    const call = state.call;
    const recording = call.recording;
    const callId = call.callId;
    if (!recording || callId === null || !call.local) return;
    const key = recording.recordingId ?? "";
    if (state.recorder && (state.recorder.recordingId ?? "") === key) return;
    if (state.recorderOpening === key) return;
    this.closeRecorder(state);
    state.recorderOpening = key;
    void (async () => {
      let turn: TurnConfig;
      try {
        turn = this.turnFresh(state) && state.turn ? state.turn : await this.fetchTurn(state);
      } catch {
        if (state.recorderOpening !== key || !this.isCurrent(state)) return;
        state.recorderOpening = null;
        this.callNotice("Can't reach the recorder: the call service is unavailable.", "error");
        return;
      }
      if (state.recorderOpening !== key) return; // stopped, or another recording, meanwhile
      state.recorderOpening = null;
      const local = state.call.local;
      if (!this.isCurrent(state) || !local || (state.call.recording?.recordingId ?? "") !== key) {
        return;
      }
      const link = new RecorderLink({
        socket: this.session.socket,
        callId,
        recordingId: recording.recordingId,
        turn,
        local,
        media: state.call.media,
      });
      state.recorder = link;
      link.start();
    })();
  }

  private closeRecorder(state: Internals): void {
    state.recorderOpening = null;
    state.recorder?.close();
    state.recorder = null;
  }

  // -- the other side, and this tab's connection ---------------------------------------------

  private onRemoteEnd(callId: string, reason: string, rejected: boolean): void {
    const state = this.current;
    if (this.awaitingStart(state)) {
      state.early.push(() => this.onRemoteEnd(callId, reason, rejected));
      return;
    }
    const found = this.byId(callId);
    if (!found) return;
    const call = found.call;
    const name = call.peer.username;
    if (call.phase === "incoming") {
      // Ringing stops here: answered on another tab, cancelled, timed out...
      this.dismiss();
      if (reason === "cancelled" || reason === "timeout") {
        this.emit("notice", {
          text: `Missed ${call.media.video ? "video " : ""}call from ${name}`,
        });
      }
      return;
    }
    if (rejected || reason === "declined") {
      const busy = reason === "busy";
      this.finish(
        found,
        reason,
        busy ? "Busy" : "Declined",
        busy ? `${name} is in another call.` : `${name} declined the call.`,
      );
      return;
    }
    const texts: Record<string, [string, string]> = {
      hangup: ["Call ended", `${name} ended the call.`],
      timeout: ["No answer", `${name} didn't answer.`],
      cancelled: ["Call cancelled", `${name} cancelled the call.`],
      disconnected: ["Disconnected", "The connection was lost."],
      unavailable: ["Unavailable", `${name} is no longer online.`],
      answered_elsewhere: ["Answered elsewhere", "The call was answered on another device."],
      server_restart: ["Call ended", "The appliance restarted."],
    };
    const [title, text] = texts[reason] ?? ["Call ended", ""];
    this.finish(found, reason, title, text);
  }

  private onPeerConnection(callId: string, userId: number, back: boolean): void {
    const state = this.byId(callId);
    if (!state || userId !== state.call.peer.user_id) return;
    state.call.reconnecting = back ? (state.call.reconnecting === "self" ? "self" : null) : "peer";
    this.changed();
    if (back) this.restartIce(state);
  }

  private onSocketDown(): void {
    const state = this.current;
    if (!state || state.call.phase === "ended") return;
    const call = state.call;
    if (call.phase === "incoming") {
      this.dismiss(); // other tabs may still ring; this one can't answer now
    } else if (call.phase === "outgoing") {
      // The server cancels a ringing call whose caller's socket leaves.
      if (call.callId !== null) state.abandoned = true;
      this.finish(state, "disconnected", "Call failed", "The connection to the appliance was lost.");
    } else if (call.reconnecting !== "self") {
      call.reconnecting = "self";
      this.changed();
    }
  }

  private async onSocketUp(): Promise<void> {
    const state = this.current;
    if (!state || state.call.reconnecting !== "self" || state.call.callId === null) return;
    let ack;
    try {
      ack = await this.session.socket
        .timeout(ACK_TIMEOUT_MS)
        .emitWithAck("call:resume", { call_id: state.call.callId });
    } catch {
      return; // the next reconnect tries again
    }
    if (!this.isCurrent(state)) return;
    if (!ack.ok) {
      this.finish(state, "disconnected", "Disconnected", "The call ended while you were offline.");
      return;
    }
    state.call.reconnecting = null;
    this.changed();
    if (ack.role === "caller") this.restartIce(state);
  }

  // -- ending --------------------------------------------------------------------------------------

  private stopTracks(stream: MediaStream | null): void {
    for (const track of stream?.getTracks() ?? []) track.stop();
  }

  private release(state: Internals): void {
    for (const timer of state.timers) window.clearTimeout(timer);
    state.timers.clear();
    this.stopTracks(state.call.local);
    state.call.local = null;
    state.call.remote = null;
    if (state.pc) {
      state.pc.close();
      state.pc = null;
    }
    this.closeRecorder(state);
    state.pendingCandidates = [];
  }

  private finish(state: Internals, reason: CallEnd["reason"], title: string, text: string): void {
    if (this.current !== state || state.call.phase === "ended") return;
    this.release(state);
    const call = state.call;
    call.phase = "ended";
    call.reconnecting = null;
    if (call.recording?.state === "recording") call.recorded = true; // stopped with the call
    call.recording = null;
    call.recordBusy = false;
    call.end = {
      reason,
      title,
      text,
      duration:
        call.connectedAt !== null ? Math.round((Date.now() - call.connectedAt) / 1000) : null,
    };
    window.clearTimeout(this.endedTimer);
    this.endedTimer = window.setTimeout(() => this.dismiss(), ENDED_SHOWN_MS);
    this.changed();
  }

  /** Close the call screen (or a ringing banner) without telling anyone. */
  dismiss(): void {
    const state = this.current;
    if (!state) return;
    window.clearTimeout(this.endedTimer);
    this.release(state);
    this.current = null;
    this.changed();
  }

  /** Call the same person again from the ended screen. */
  again(): void {
    const call = this.current?.call;
    if (!call || call.phase !== "ended") return;
    const { peer, media } = call;
    this.dismiss();
    void this.start(peer, media);
  }

  dispose(): void {
    const state = this.current;
    const call = state?.call;
    if (call && call.callId !== null && call.phase !== "ended" && call.phase !== "incoming") {
      this.session.socket.emit("call:end", { call_id: call.callId }, () => undefined);
    }
    if (state) this.release(state);
    this.current = null;
    window.clearTimeout(this.endedTimer);
    this.disposed = true;
    for (const off of this.unsubscribe) off();
    this.unsubscribe = [];
    this.clearListeners();
  }
}

class MediaFailure extends Error {
  constructor(cause: unknown) {
    super("media failure", { cause });
  }
}
