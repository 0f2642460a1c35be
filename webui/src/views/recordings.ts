// The Recordings view (main area): my recorded calls, newest first, each with the other person,
// when, how long, how big and who recorded it; ready ones play in the page, download and can be
// deleted (for both participants, after a confirmation); ones still being processed say so.

import { ApiError, NetworkError } from "../api.ts";
import { formatSize } from "../media.ts";
import type { Recording } from "../protocol.ts";
import type { Recordings } from "../recordings.ts";
import { avatar } from "../ui/avatar.ts";
import { confirmDialog } from "../ui/dialog.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { clockTime, dayLabel, fullTime } from "../ui/time.ts";

export interface RecordingsView {
  element: HTMLElement;
  focusTitle(): void;
  dispose(): void;
}

export interface RecordingsViewOptions {
  recordings: Recordings;
  /** Whether this appliance records calls (null: not known). */
  recordingEnabled: () => boolean | null;
  onBack: () => void;
  toast: (text: string) => void;
  dialogHost: HTMLElement;
}

/** "0:07", "12:30", "1:02:03". */
export function clockDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/** "Today, 14:05", "Monday, 09:12", "3 March, 17:40". */
function when(unixSeconds: number): string {
  return `${dayLabel(unixSeconds)}, ${clockTime(unixSeconds)}`;
}

function fileName(recording: Recording, peer: string): string {
  const date = new Date(recording.started_at * 1000).toISOString().slice(0, 16).replace(":", "-");
  const safe = peer.replace(/[^\w.-]+/g, "_");
  const ext = recording.content_type?.includes("mp4") ? "mp4" : "webm";
  return `call-with-${safe}-${date}.${ext}`;
}

interface Card {
  item: HTMLLIElement;
  update(recording: Recording): void;
  dispose(): void;
}

export function recordingsView(options: RecordingsViewOptions): RecordingsView {
  const { recordings } = options;
  const cards = new Map<string, Card>();

  const back = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon back",
      "aria-label": "Back to conversations",
      "data-testid": "recordings-back",
      onclick: () => options.onBack(),
    },
    icon("back"),
  );
  const title = h(
    "h2",
    {
      id: "recordings-title",
      class: "conversation-name",
      tabindex: -1,
      "data-testid": "recordings-title",
    },
    "Recordings",
  );
  const subtitle = h("span", { class: "person-status" }, "Recorded calls you took part in");
  const refresh = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon",
      "aria-label": "Refresh",
      title: "Refresh",
      "data-testid": "recordings-refresh",
      onclick: () => void recordings.reload(),
    },
    icon("retry"),
  );
  const head = h(
    "header",
    { class: "conversation-head" },
    back,
    h("span", { class: "recordings-head-icon", "aria-hidden": "true" }, icon("recordings")),
    h("div", { class: "person-text" }, title, subtitle),
    h("div", { class: "conversation-actions" }, refresh),
  );
  const list = h("ul", { class: "recording-list", role: "list", "data-testid": "recording-list" });
  const placeholder = h("div", { class: "recordings-placeholder" });
  const body = h("div", { class: "recordings-body" }, list, placeholder);
  const element = h(
    "section",
    { class: "recordings", "data-testid": "recordings-view", "aria-labelledby": "recordings-title" },
    head,
    body,
  );

  // -- one recording ----------------------------------------------------------------------------

  function card(initial: Recording): Card {
    const id = initial.id;
    let recording = initial;
    const peer = recordings.peerOf(initial).username;
    const name = h("strong", { class: "recording-title" }, `Call with ${peer}`);
    const time = h("time", { class: "recording-when" });
    const meta = h("span", { class: "recording-meta", "data-testid": "recording-meta" });
    const by = h("span", { class: "recording-by" });
    const status = h(
      "span",
      { class: "recording-status", "data-testid": "recording-status" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      "Processing…",
    );
    const play = h(
      "button",
      {
        type: "button",
        class: "btn btn-secondary btn-sm recording-play",
        "data-testid": "recording-play",
        "aria-expanded": "false",
        onclick: () => togglePlayer(),
      },
    );
    const download = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon btn-icon-sm",
        "data-testid": "recording-download",
        "aria-label": `Download the recording of the call with ${peer}`,
        title: "Download",
        onclick: () => void save(),
      },
      icon("download"),
    );
    const remove = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon btn-icon-sm recording-delete",
        "data-testid": "recording-delete",
        "aria-label": `Delete the recording of the call with ${peer}`,
        title: "Delete",
        onclick: () => void confirmDelete(),
      },
      icon("trash"),
    );
    const video = h("video", {
      class: "recording-video",
      controls: true,
      playsinline: true,
      preload: "metadata",
      "data-testid": "recording-video",
      "aria-label": `Recording of the call with ${peer}`,
    });
    const note = h("p", { class: "recording-note", role: "alert", hidden: true });
    const player = h("div", { class: "recording-player", hidden: true }, video, note);
    const item = h(
      "li",
      { class: "recording-card", "data-testid": "recording", "data-recording-id": id },
      h(
        "div",
        { class: "recording-row" },
        avatar(peer),
        h("div", { class: "recording-text" }, h("span", { class: "recording-line" }, name, time), meta, by),
        h("div", { class: "recording-actions" }, status, play, download, remove),
      ),
      player,
    );
    let retried = false;
    let resumeAt = 0;

    async function load(fresh: boolean): Promise<void> {
      note.hidden = true;
      try {
        video.src = await recordings.url(id, fresh);
      } catch (error) {
        note.hidden = false;
        setText(
          note,
          error instanceof ApiError && error.code === "conflict"
            ? "This recording is still being processed."
            : "The recording can't be loaded right now.",
        );
      }
    }

    video.addEventListener("loadedmetadata", () => {
      if (resumeAt > 0) video.currentTime = resumeAt;
      resumeAt = 0;
    });
    video.addEventListener("error", () => {
      if (!video.getAttribute("src")) return;
      if (!retried) {
        retried = true; // the URL may have expired: one fresh one, at the same position
        resumeAt = video.currentTime;
        void load(true);
        return;
      }
      note.hidden = false;
      setText(note, "This recording can't be played in this browser. Download it instead.");
    });
    video.addEventListener("play", () => {
      retried = false;
    });

    function togglePlayer(): void {
      const open = player.hidden;
      player.hidden = !open;
      setAttr(play, "aria-expanded", open ? "true" : "false");
      setAttr(item, "data-open", open ? "true" : null);
      renderPlay();
      if (!open) {
        video.pause();
        return;
      }
      for (const other of cards.values()) if (other !== self) other.dispose();
      void (async () => {
        if (!video.getAttribute("src")) await load(false);
        if (player.hidden) return;
        video.play().catch(() => undefined); // autoplay refused: the controls are there
      })();
    }

    function renderPlay(): void {
      const open = !player.hidden;
      play.replaceChildren(icon(open ? "close" : "play"), open ? "Hide" : "Play");
    }

    async function save(): Promise<void> {
      try {
        const url = await recordings.url(id);
        const link = h("a", { href: url, download: fileName(recording, peer), hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
      } catch {
        options.toast("The recording could not be downloaded. Try again.");
      }
    }

    async function confirmDelete(): Promise<void> {
      const ok = await confirmDialog(
        {
          title: "Delete recording?",
          text: `The recording of your call with ${peer} (${when(recording.started_at)}) will be deleted for both of you. This can't be undone.`,
          confirmLabel: "Delete",
          danger: true,
        },
        options.dialogHost,
      );
      if (!ok) return;
      remove.disabled = true;
      try {
        await recordings.remove(id);
      } catch (error) {
        remove.disabled = false;
        if (error instanceof ApiError && error.code === "not_found") {
          void recordings.reload(); // already gone
          return;
        }
        if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
        options.toast(
          error instanceof ApiError && error.code === "conflict"
            ? "The recording can be deleted once it is processed."
            : "The recording could not be deleted. Try again.",
        );
      }
    }

    function update(next: Recording): void {
      recording = next;
      const ready = next.status === "ready";
      setAttr(item, "data-status", next.status);
      setAttr(item, "data-kind", next.content_type?.startsWith("audio/") ? "audio" : "video");
      setText(time, when(next.started_at));
      setAttr(time, "datetime", new Date(next.started_at * 1000).toISOString());
      setAttr(time, "title", fullTime(next.started_at));
      const parts: string[] = [];
      if (next.duration !== null) parts.push(clockDuration(next.duration));
      if (next.size !== null) parts.push(formatSize(next.size));
      setText(meta, parts.join(" · "));
      meta.hidden = parts.length === 0;
      setText(by, recordings.mine(next) ? "Recorded by you" : `Recorded by ${next.started_by.username}`);
      status.hidden = ready;
      play.hidden = !ready;
      download.hidden = !ready;
      remove.hidden = !ready; // a file still being made can't be deleted yet
      if (!ready && !player.hidden) togglePlayer();
    }

    const self: Card = {
      item,
      update,
      dispose() {
        if (!player.hidden) togglePlayer();
      },
    };
    renderPlay();
    update(initial);
    return self;
  }

  // -- the list ---------------------------------------------------------------------------------

  function render(): void {
    const items = recordings.list;
    setAttr(element, "data-state", items === null ? (recordings.error ? "error" : "loading") : "ready");
    refresh.disabled = recordings.loading;
    if (items === null) {
      list.hidden = true;
      placeholder.hidden = false;
      if (recordings.error) {
        const retry = h(
          "button",
          { type: "button", class: "btn btn-secondary", onclick: () => void recordings.reload() },
          "Try again",
        );
        placeholder.replaceChildren(
          h(
            "div",
            { class: "empty-state", "data-testid": "recordings-error" },
            h("h2", { class: "empty-title" }, "Recordings could not be loaded"),
            h(
              "p",
              { class: "empty-text" },
              recordings.error instanceof NetworkError
                ? "Can't reach the appliance right now."
                : "Something went wrong on the appliance.",
            ),
            retry,
          ),
        );
      } else {
        placeholder.replaceChildren(
          h(
            "div",
            { class: "recordings-loading", "data-testid": "recordings-loading" },
            h("span", { class: "spinner", "aria-hidden": "true" }),
            "Loading recordings…",
          ),
        );
      }
      return;
    }
    // Keep the cards (and a playing video) that stay; add new ones in order.
    const seen = new Set<string>();
    let previous: HTMLElement | null = null;
    for (const recording of items) {
      seen.add(recording.id);
      let entry = cards.get(recording.id);
      if (!entry) {
        entry = card(recording);
        cards.set(recording.id, entry);
      } else {
        entry.update(recording);
      }
      const wanted: ChildNode | null = previous ? previous.nextSibling : list.firstChild;
      if (wanted !== entry.item) list.insertBefore(entry.item, wanted);
      previous = entry.item;
    }
    for (const [id, entry] of cards) {
      if (seen.has(id)) continue;
      entry.dispose();
      entry.item.remove();
      cards.delete(id);
    }
    list.hidden = items.length === 0;
    placeholder.hidden = items.length > 0;
    if (items.length === 0) {
      const disabled = options.recordingEnabled() === false;
      placeholder.replaceChildren(
        h(
          "div",
          { class: "empty-state", "data-testid": "recordings-empty" },
          h("span", { class: "recordings-empty-icon", "aria-hidden": "true" }, icon("recordings")),
          h("h2", { class: "empty-title" }, "No recordings yet"),
          h(
            "p",
            { class: "empty-text" },
            disabled
              ? "Recording calls is turned off on this appliance."
              : "Press the record button during a call to record it. Both of you are told when a call is recorded, and the recording shows up here for both of you.",
          ),
        ),
      );
    }
  }

  const off = recordings.on("changed", render);
  render();
  if (!recordings.loading) void recordings.reload();

  return {
    element,
    focusTitle() {
      title.focus();
    },
    dispose() {
      off();
      for (const entry of cards.values()) entry.dispose();
    },
  };
}
