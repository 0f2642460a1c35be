// The recorder leg of a call being recorded (docs/protocol.md, "Recording"): a second
// RTCPeerConnection, next to the peer-to-peer one and independent of it, that sends this side's
// microphone and camera to the appliance's recorder.
//
// - Send only: one sendonly transceiver per kind the call has (video even while the camera is
//   off: its track comes back with `replaceVideo`). Nothing is received.
// - This side offers (`recorder:offer`); the recorder answers (`recorder:answer`) through web.
//   Candidates trickle both ways (`recorder:ice-candidate`, null at the end); remote ones wait
//   for the answer; local ones wait until the offer is out, so the recorder sees it first.
// - Same ICE servers and policy as the call (GET /api/turn).
// - `close()` stops nothing local: the tracks belong to the call.

import type { AppSocket } from "./session.ts";
import type { CallMedia, CandidateBody, SdpBody, TurnConfig } from "./protocol.ts";

export class RecorderLink {
  readonly callId: string;
  readonly recordingId: string | null;
  private readonly socket: AppSocket;
  private readonly pc: RTCPeerConnection;
  private videoSender: RTCRtpSender | null = null;
  private chain: Promise<void> = Promise.resolve();
  private offered = false;
  private readonly localQueue: Array<CandidateBody | null> = [];
  private readonly remoteQueue: Array<CandidateBody | null> = [];
  private closed = false;

  constructor(options: {
    socket: AppSocket;
    callId: string;
    recordingId: string | null;
    turn: TurnConfig;
    local: MediaStream;
    media: CallMedia;
  }) {
    this.socket = options.socket;
    this.callId = options.callId;
    this.recordingId = options.recordingId;
    this.pc = new RTCPeerConnection({
      iceServers: options.turn.iceServers,
      iceTransportPolicy: options.turn.iceTransportPolicy,
    });
    const local = options.local;
    const audio = local.getAudioTracks()[0];
    if (options.media.audio || audio) {
      this.pc.addTransceiver(audio ?? "audio", { direction: "sendonly", streams: [local] });
    }
    if (options.media.video) {
      const transceiver = this.pc.addTransceiver(local.getVideoTracks()[0] ?? "video", {
        direction: "sendonly",
        streams: [local],
      });
      this.videoSender = transceiver.sender;
    }
    this.pc.addEventListener("icecandidate", (event) => {
      if (this.closed) return;
      const candidate = event.candidate ? (event.candidate.toJSON() as CandidateBody) : null;
      if (candidate && !candidate.candidate) return; // an empty end-of-generation marker
      if (this.offered) this.sendCandidate(candidate);
      else this.localQueue.push(candidate);
    });
  }

  /** The connection's state, for the call screen and tests. */
  get state(): RTCPeerConnectionState {
    return this.pc.connectionState;
  }

  /** Make the offer and send it. */
  start(): void {
    this.enqueue(async () => {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      if (this.closed) return;
      const sdp = this.pc.localDescription?.sdp ?? offer.sdp ?? "";
      this.emit("recorder:offer", { offer: { type: "offer", sdp } });
      this.offered = true;
      for (const candidate of this.localQueue.splice(0)) this.sendCandidate(candidate);
    });
  }

  answer(answer: SdpBody): void {
    this.enqueue(async () => {
      if (this.pc.signalingState !== "have-local-offer") return; // stale or repeated
      await this.pc.setRemoteDescription(answer);
      for (const candidate of this.remoteQueue.splice(0)) await this.addCandidate(candidate);
    });
  }

  candidate(candidate: CandidateBody | null): void {
    if (this.closed) return;
    if (!this.pc.remoteDescription) {
      this.remoteQueue.push(candidate);
      return;
    }
    this.enqueue(() => this.addCandidate(candidate));
  }

  /** The camera went off (null) or came back. */
  async replaceVideo(track: MediaStreamTrack | null): Promise<void> {
    if (this.closed || !this.videoSender) return;
    await this.videoSender.replaceTrack(track).catch(() => undefined);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.localQueue.length = 0;
    this.remoteQueue.length = 0;
    this.pc.close();
  }

  private enqueue(step: () => Promise<void>): void {
    this.chain = this.chain.then(async () => {
      if (this.closed) return;
      try {
        await step();
      } catch (error) {
        if (!this.closed) console.warn("recorder signaling step failed", error);
      }
    });
  }

  private async addCandidate(candidate: CandidateBody | null): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      if (candidate) console.warn("recorder ICE candidate refused", error);
    }
  }

  private sendCandidate(candidate: CandidateBody | null): void {
    this.emit("recorder:ice-candidate", { candidate });
  }

  private emit(
    event: "recorder:offer" | "recorder:ice-candidate",
    body: { offer: SdpBody } | { candidate: CandidateBody | null },
  ): void {
    if (this.closed || !this.socket.connected) return;
    this.socket.emit(event as "recorder:offer", { call_id: this.callId, ...body } as never, () =>
      undefined,
    );
  }
}
