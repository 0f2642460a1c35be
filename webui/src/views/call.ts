// The call screens: the incoming-call banner (every tab of the callee), and the call view over the
// app (ringing, connecting, in the call, ended) with remote video large, the local preview small,
// mute, camera, record and hang-up controls, a timer and the connection state. While the call is
// recorded both sides see a red "Recording" badge with its time; the notices of the call
// (who started recording it, a recording that failed) show on the call screen itself, since
// the modal call view covers the app's toasts.

import type { Call, Calls } from "../calls.ts";
import { avatar } from "../ui/avatar.ts";
import { uid } from "../ui/dialog.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";

export interface CallOverlay {
  /** Both parts; append to the app. */
  elements: HTMLElement[];
  dispose(): void;
}

function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/** A soft two-tone ring (incoming) or a ringback (outgoing), while allowed to make sound. */
class Ringer {
  private context: AudioContext | null = null;
  private timer: number | undefined;
  private kind: "incoming" | "outgoing" | null = null;

  play(kind: "incoming" | "outgoing" | null): void {
    if (kind === this.kind) return;
    this.stop();
    this.kind = kind;
    if (!kind) return;
    try {
      this.context = new AudioContext();
    } catch {
      return;
    }
    const beep = (): void => {
      const context = this.context;
      if (!context || context.state !== "running") {
        void context?.resume().catch(() => undefined);
        return;
      }
      const tones = kind === "incoming" ? [660, 880] : [440];
      tones.forEach((frequency, index) => {
        const start = context.currentTime + index * 0.22;
        const osc = context.createOscillator();
        const gain = context.createGain();
        osc.frequency.value = frequency;
        gain.gain.setValueAtTime(0, start);
        gain.gain.linearRampToValueAtTime(kind === "incoming" ? 0.08 : 0.05, start + 0.02);
        gain.gain.linearRampToValueAtTime(0, start + (kind === "incoming" ? 0.2 : 0.9));
        osc.connect(gain).connect(context.destination);
        osc.start(start);
        osc.stop(start + 1);
      });
    };
    beep();
    this.timer = window.setInterval(beep, kind === "incoming" ? 1_600 : 3_000);
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
    this.kind = null;
    void this.context?.close().catch(() => undefined);
    this.context = null;
  }
}

export function callOverlay(calls: Calls): CallOverlay {
  // -- incoming banner ----------------------------------------------------------------------
  const inTitleId = uid("incoming-title");
  const inTextId = uid("incoming-text");
  const inAvatar = h("span", { class: "incoming-avatar" });
  const inName = h("strong", { id: inTitleId, class: "incoming-name" });
  const inText = h("span", { id: inTextId, class: "incoming-text" });
  const decline = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-danger",
      "data-testid": "incoming-decline",
      onclick: () => calls.decline(),
    },
    icon("phoneOff"),
  );
  const accept = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-accept",
      "data-testid": "incoming-accept",
      onclick: () => void calls.accept(),
    },
    icon("phone"),
  );
  const incoming = h(
    "section",
    {
      class: "incoming-call",
      role: "alertdialog",
      "aria-labelledby": inTitleId,
      "aria-describedby": inTextId,
      "data-testid": "incoming-call",
      hidden: true,
    },
    inAvatar,
    h("div", { class: "incoming-body" }, inName, inText),
    h("div", { class: "incoming-actions" }, decline, accept),
  );

  // -- the call view ------------------------------------------------------------------------
  const remoteVideo = h("video", {
    class: "call-remote",
    autoplay: true,
    playsinline: true,
    "data-testid": "call-remote-video",
  });
  const localVideo = h("video", {
    class: "call-local",
    autoplay: true,
    playsinline: true,
    "data-testid": "call-local-video",
  });
  localVideo.muted = true; // never hear yourself
  const peerAvatar = h("span", { class: "call-peer-avatar" });
  const peerName = h("h2", { class: "call-peer-name", "data-testid": "call-peer-name" });
  const peerStatus = h("p", { class: "call-peer-status" });
  const backdrop = h("div", { class: "call-backdrop" }, peerAvatar, peerName, peerStatus);
  const playBlocked = h(
    "button",
    {
      type: "button",
      class: "btn btn-secondary call-play",
      hidden: true,
      onclick: () => void playRemote(),
    },
    "Tap to hear the call",
  );
  const topName = h("span", { class: "call-top-name" });
  const status = h("span", { class: "call-status", "data-testid": "call-status", role: "status" });
  const reconnectBadge = h(
    "span",
    { class: "call-reconnecting", "data-testid": "call-reconnecting", hidden: true },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    "Reconnecting…",
  );
  const recordingTime = h("span", { class: "call-recording-time" });
  const recordingBadge = h(
    "span",
    {
      class: "call-recording",
      role: "status",
      "data-testid": "call-recording-indicator",
      hidden: true,
    },
    h("span", { class: "call-recording-dot", "aria-hidden": "true" }),
    h("span", { class: "call-recording-label" }, "Recording"),
    recordingTime,
  );
  const top = h(
    "div",
    { class: "call-top" },
    h("div", { class: "call-top-text" }, topName, status),
    h("div", { class: "call-top-badges" }, recordingBadge, reconnectBadge),
  );
  const noticeIcon = h("span", { class: "call-notice-icon", "aria-hidden": "true" });
  const noticeText = h("span", { class: "call-notice-text", "data-testid": "call-notice-text" });
  const notice = h(
    "div",
    { class: "call-notice", role: "status", "aria-live": "polite", "data-testid": "call-notice", hidden: true },
    noticeIcon,
    noticeText,
    h(
      "button",
      {
        type: "button",
        class: "call-notice-close",
        "aria-label": "Dismiss",
        onclick: () => hideNotice(),
      },
      icon("close"),
    ),
  );
  const micButton = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-toggle",
      "data-testid": "call-mic",
      "aria-pressed": "false",
      onclick: () => calls.toggleMic(),
    },
  );
  const cameraButton = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-toggle",
      "data-testid": "call-camera",
      "aria-pressed": "false",
      onclick: () => void calls.toggleCamera(),
    },
  );
  const recordButton = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-toggle call-btn-record",
      "data-testid": "call-record",
      "aria-pressed": "false",
      onclick: () => void calls.toggleRecording(),
    },
  );
  const hangUp = h(
    "button",
    {
      type: "button",
      class: "call-btn call-btn-danger call-btn-lg",
      "data-testid": "call-hangup",
      onclick: () => calls.hangUp(),
    },
    icon("phoneOff"),
  );
  const controls = h("div", { class: "call-controls", "data-testid": "call-controls" }, micButton, cameraButton, recordButton, hangUp);
  const endedAvatar = h("span", { class: "call-ended-avatar" });
  const endedTitle = h("h2", { class: "call-ended-title", "data-testid": "call-ended-title" });
  const endedText = h("p", { class: "call-ended-text", "data-testid": "call-ended-text" });
  const endedDuration = h("p", { class: "call-ended-duration" });
  const endedRecorded = h(
    "p",
    { class: "call-ended-recorded", "data-testid": "call-ended-recorded", hidden: true },
    h("span", { class: "call-recording-dot", "aria-hidden": "true" }),
    "The recording will be in Recordings shortly.",
  );
  const closeButton = h(
    "button",
    {
      type: "button",
      class: "btn btn-secondary",
      "data-testid": "call-close",
      onclick: () => calls.dismiss(),
    },
    "Close",
  );
  const againButton = h(
    "button",
    {
      type: "button",
      class: "btn btn-primary",
      "data-testid": "call-again",
      onclick: () => calls.again(),
    },
    icon("phone"),
    "Call again",
  );
  const endedPanel = h(
    "div",
    { class: "call-ended", "data-testid": "call-ended", hidden: true },
    endedAvatar,
    endedTitle,
    endedText,
    endedDuration,
    endedRecorded,
    h("div", { class: "call-ended-actions" }, closeButton, againButton),
  );
  const viewLabel = uid("call-label");
  const view = h(
    "dialog",
    { class: "call-view", "data-testid": "call-view", "aria-labelledby": viewLabel },
    h(
      "div",
      { class: "call-stage" },
      remoteVideo,
      backdrop,
      localVideo,
      playBlocked,
    ),
    top,
    notice,
    controls,
    endedPanel,
  );
  topName.id = viewLabel;
  // Escape must not end a call by accident.
  view.addEventListener("cancel", (event) => {
    event.preventDefault();
    if (calls.call?.phase === "ended") calls.dismiss();
  });

  // -- rendering ----------------------------------------------------------------------------
  const ringer = new Ringer();
  let shownPeer = "";
  let ticker: number | undefined;
  let noticeTimer: number | undefined;

  function showNotice(text: string, tone: "info" | "recording" | "error"): void {
    window.clearTimeout(noticeTimer);
    setText(noticeText, text);
    setAttr(notice, "data-tone", tone);
    noticeIcon.replaceChildren(tone === "error" ? icon("alert") : "");
    notice.hidden = false;
    // Who started recording stays up longer: it is the consent notice.
    noticeTimer = window.setTimeout(hideNotice, tone === "recording" ? 15_000 : 8_000);
  }

  function hideNotice(): void {
    window.clearTimeout(noticeTimer);
    notice.hidden = true;
  }

  function recordingTimeText(call: Call): string {
    const recording = call.recording;
    if (!recording) return "";
    if (recording.since === null) return "starting…";
    return duration((Date.now() - recording.since) / 1000);
  }

  async function playRemote(): Promise<void> {
    try {
      await remoteVideo.play();
      playBlocked.hidden = true;
    } catch {
      playBlocked.hidden = remoteVideo.srcObject === null;
    }
  }

  function statusText(call: Call): string {
    if (call.phase === "ended") return call.end?.title ?? "Call ended";
    if (call.reconnecting) return "Reconnecting…";
    if (call.phase === "outgoing") {
      if (call.step === "preparing") {
        return call.media.video ? "Starting your camera…" : "Starting your microphone…";
      }
      return call.step === "ringing" ? "Ringing…" : "Calling…";
    }
    if (call.phase === "connecting") return "Connecting…";
    if (call.connectedAt !== null) {
      const timer = duration((Date.now() - call.connectedAt) / 1000);
      if (call.connection === "disconnected") return `${timer} · Poor connection`;
      return timer;
    }
    return "Connecting…";
  }

  function renderIncoming(call: Call | null): void {
    const ringing = call?.phase === "incoming";
    incoming.hidden = !ringing;
    if (!ringing || !call) return;
    const name = call.peer.username;
    if (incoming.dataset.peer !== name) {
      incoming.dataset.peer = name;
      inAvatar.replaceChildren(avatar(name, "lg"));
      setText(inName, name);
    }
    setAttr(incoming, "data-call-id", call.callId);
    setText(inText, call.media.video ? "Incoming video call…" : "Incoming audio call…");
    setAttr(accept, "aria-label", `Accept ${call.media.video ? "video " : ""}call from ${name}`);
    setAttr(accept, "title", "Accept");
    setAttr(decline, "aria-label", `Decline call from ${name}`);
    setAttr(decline, "title", "Decline");
  }

  function render(): void {
    const call = calls.call;
    renderIncoming(call);
    ringer.play(
      call?.phase === "incoming"
        ? "incoming"
        : call?.phase === "outgoing" && call.step === "ringing"
          ? "outgoing"
          : null,
    );
    const onScreen = call !== null && call.phase !== "incoming";
    if (!onScreen || !call) {
      hideNotice();
      if (view.open) view.close();
      remoteVideo.srcObject = null;
      localVideo.srcObject = null;
      window.clearInterval(ticker);
      ticker = undefined;
      return;
    }
    if (!view.open && view.isConnected) {
      view.showModal();
      hangUp.focus();
    }
    const name = call.peer.username;
    if (shownPeer !== name) {
      shownPeer = name;
      peerAvatar.replaceChildren(avatar(name, "lg"));
      endedAvatar.replaceChildren(avatar(name, "lg"));
      setText(peerName, name);
      setText(topName, name);
    }
    const video = call.media.video;
    setAttr(view, "data-phase", call.phase);
    setAttr(view, "data-connection", call.connection);
    setAttr(view, "data-media", video ? "video" : "audio");
    setAttr(view, "data-reconnecting", call.reconnecting);
    setAttr(view, "data-peer", name);
    const text = statusText(call);
    setText(status, text);
    setText(peerStatus, text);
    reconnectBadge.hidden = call.reconnecting === null;

    // Media: the remote stream plays (sound too) even when its picture is hidden.
    const ended = call.phase === "ended";
    if (remoteVideo.srcObject !== call.remote) {
      remoteVideo.srcObject = call.remote;
      if (call.remote) void playRemote();
    }
    if (localVideo.srcObject !== call.local) localVideo.srcObject = call.local;
    const remoteShowing =
      !ended && video && call.remote !== null && call.phase === "active" && !call.remoteVideoMuted;
    setAttr(view, "data-remote-video", remoteShowing ? "on" : "off");
    const localShowing = !ended && video && !call.cameraOff && call.local !== null;
    setAttr(view, "data-local-video", localShowing ? "on" : "off");

    // Controls.
    controls.hidden = ended;
    setAttr(micButton, "aria-pressed", call.micMuted ? "true" : "false");
    setAttr(micButton, "aria-label", call.micMuted ? "Unmute microphone" : "Mute microphone");
    setAttr(micButton, "title", call.micMuted ? "Unmute" : "Mute");
    micButton.replaceChildren(icon(call.micMuted ? "micOff" : "mic"));
    micButton.disabled = call.local === null;
    cameraButton.hidden = !video;
    setAttr(cameraButton, "aria-pressed", call.cameraOff ? "true" : "false");
    setAttr(cameraButton, "aria-label", call.cameraOff ? "Turn camera on" : "Turn camera off");
    setAttr(cameraButton, "title", call.cameraOff ? "Camera on" : "Camera off");
    cameraButton.replaceChildren(icon(call.cameraOff ? "videoOff" : "video"));
    cameraButton.disabled = call.local === null;
    const ringing = call.phase === "outgoing";
    setAttr(hangUp, "aria-label", ringing ? "Cancel call" : "Hang up");
    setAttr(hangUp, "title", ringing ? "Cancel" : "Hang up");

    // Recording: the badge on both sides, the button on both sides (either may stop it).
    const recording = ended ? null : call.recording;
    recordingBadge.hidden = recording === null;
    setAttr(view, "data-recording", recording?.state ?? null);
    setAttr(recordingBadge, "data-state", recording?.state ?? null);
    setText(recordingTime, recordingTimeText(call));
    setAttr(
      recordingBadge,
      "title",
      recording?.by ? `Recording started by ${recording.mine ? "you" : recording.by.username}` : null,
    );
    recordButton.hidden = calls.recordingEnabled === false && recording === null;
    setAttr(recordButton, "aria-pressed", recording ? "true" : "false");
    setAttr(recordButton, "aria-label", recording ? "Stop recording" : "Record this call");
    setAttr(recordButton, "title", recording ? "Stop recording" : "Record");
    setAttr(recordButton, "data-busy", call.recordBusy ? "true" : null);
    recordButton.replaceChildren(icon(recording ? "stopRecord" : "record"));
    recordButton.disabled = call.recordBusy || call.phase !== "active" || call.local === null;

    // Ended.
    endedPanel.hidden = !ended;
    top.hidden = ended;
    setAttr(view, "data-end-reason", call.end?.reason ?? null);
    if (ended && call.end) {
      setText(endedTitle, call.end.title);
      setText(endedText, call.end.text);
      endedText.hidden = call.end.text === "";
      endedDuration.hidden = call.end.duration === null;
      setText(endedDuration, call.end.duration === null ? "" : duration(call.end.duration));
      endedRecorded.hidden = !call.recorded;
      if (!endedPanel.contains(document.activeElement)) closeButton.focus();
    }

    const ticking = call.phase === "active" && !ended;
    if (ticking && ticker === undefined) {
      ticker = window.setInterval(() => {
        const current = calls.call;
        if (current) {
          const text = statusText(current);
          setText(status, text);
          setText(peerStatus, text);
          setText(recordingTime, recordingTimeText(current));
        }
      }, 1_000);
    } else if (!ticking && ticker !== undefined) {
      window.clearInterval(ticker);
      ticker = undefined;
    }
  }

  const off = calls.on("changed", render);
  const offNotice = calls.on("callNotice", ({ text, tone }) => showNotice(text, tone));
  render();

  return {
    elements: [incoming, view],
    dispose() {
      off();
      offNotice();
      window.clearTimeout(noticeTimer);
      ringer.stop();
      window.clearInterval(ticker);
      if (view.open) view.close();
    },
  };
}
