// Shared files in a conversation: image thumbnails (with a full-size viewer), video and audio
// players, file cards that download, and uploads still on their way.
//
// Elements ask MediaLinks for a short-lived URL when they are built, and for a fresh one when
// loading fails (the URL may have expired while the page was open).

import {
  attachmentKind,
  formatSize,
  typeLabel,
  type MediaLinks,
  type PendingUpload,
} from "../media.ts";
import type { Attachment } from "../protocol.ts";
import { closeOnBackdrop, openModal, uid } from "../ui/dialog.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";

export interface AttachmentContext {
  links: MediaLinks;
  toast: (text: string) => void;
  dialogHost: HTMLElement;
}

/** Save a file under its name (same-origin URL, so `download` applies). */
function saveAs(url: string, filename: string): void {
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
}

async function download(attachment: Attachment, context: AttachmentContext): Promise<void> {
  try {
    saveAs(await context.links.url(attachment.media_id), attachment.filename);
  } catch {
    context.toast(`“${attachment.filename}” could not be downloaded. Try again.`);
  }
}

/** The element for a message's attachment. */
export function attachmentElement(attachment: Attachment, context: AttachmentContext): HTMLElement {
  switch (attachmentKind(attachment.content_type)) {
    case "image":
      return imageElement(attachment, context);
    case "video":
    case "audio":
      return playerElement(attachment, context);
    default:
      return fileCard(attachment, () => void download(attachment, context));
  }
}

// -- images ---------------------------------------------------------------------------------------

function imageElement(attachment: Attachment, context: AttachmentContext): HTMLElement {
  const img = h("img", {
    class: "att-img",
    alt: attachment.filename,
    decoding: "async",
    draggable: "false",
    "data-testid": "attachment-img",
  });
  const failed = h(
    "span",
    { class: "att-img-failed" },
    icon("image"),
    h("span", {}, "Image unavailable"),
    h("span", { class: "att-img-retry" }, "Tap to retry"),
  );
  const button = h(
    "button",
    {
      type: "button",
      class: "att-image",
      "data-testid": "attachment-image",
      "data-state": "loading",
      "aria-label": `Open image ${attachment.filename}`,
      title: attachment.filename,
    },
    img,
    h("span", { class: "att-img-loading skeleton", "aria-hidden": "true" }),
    failed,
  );
  let retried = false;

  async function load(fresh: boolean): Promise<void> {
    setAttr(button, "data-state", "loading");
    try {
      img.src = await context.links.url(attachment.media_id, fresh);
    } catch {
      setAttr(button, "data-state", "error");
    }
  }

  img.addEventListener("load", () => setAttr(button, "data-state", "loaded"));
  img.addEventListener("error", () => {
    if (!img.getAttribute("src")) return;
    if (!retried) {
      retried = true; // perhaps expired: one fresh URL
      void load(true);
    } else {
      setAttr(button, "data-state", "error");
    }
  });
  button.addEventListener("click", () => {
    if (button.dataset.state === "error") {
      retried = false;
      void load(true);
    } else if (button.dataset.state === "loaded") {
      void lightbox(attachment, context);
    }
  });
  void load(false);
  return button;
}

/** The full-size image over the page, with "open in new tab" and "download". */
async function lightbox(attachment: Attachment, context: AttachmentContext): Promise<void> {
  let url: string;
  try {
    url = await context.links.url(attachment.media_id);
  } catch {
    context.toast("The image could not be opened. Try again.");
    return;
  }
  const titleId = uid("lightbox-title");
  const close = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon lightbox-btn",
      "aria-label": "Close",
      "data-testid": "lightbox-close",
    },
    icon("close"),
  );
  const dialog = h(
    "dialog",
    { class: "lightbox", "aria-labelledby": titleId, "data-testid": "lightbox" },
    h(
      "div",
      { class: "lightbox-bar" },
      h(
        "div",
        { class: "lightbox-title" },
        h("span", { id: titleId, class: "lightbox-name" }, attachment.filename),
        h("span", { class: "lightbox-size" }, formatSize(attachment.size)),
      ),
      h(
        "a",
        {
          class: "btn btn-ghost btn-icon lightbox-btn",
          href: url,
          target: "_blank",
          rel: "noopener noreferrer",
          title: "Open in a new tab",
          "aria-label": "Open in a new tab",
          "data-testid": "lightbox-open",
        },
        icon("external"),
      ),
      h(
        "a",
        {
          class: "btn btn-ghost btn-icon lightbox-btn",
          href: url,
          download: attachment.filename,
          title: "Download",
          "aria-label": `Download ${attachment.filename}`,
          "data-testid": "lightbox-download",
        },
        icon("download"),
      ),
      close,
    ),
    h(
      "div",
      { class: "lightbox-stage" },
      h("img", { class: "lightbox-img", src: url, alt: attachment.filename }),
    ),
  );
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if ((event.target as HTMLElement).classList.contains("lightbox-stage")) dialog.close();
  });
  closeOnBackdrop(dialog);
  const closed = openModal(dialog, context.dialogHost);
  close.focus();
  await closed;
}

// -- video and audio --------------------------------------------------------------------------------

function playerElement(attachment: Attachment, context: AttachmentContext): HTMLElement {
  const video = attachmentKind(attachment.content_type) === "video";
  const player = video
    ? h("video", {
        class: "att-video",
        controls: true,
        preload: "metadata",
        playsinline: true,
        "data-testid": "attachment-video",
        "aria-label": attachment.filename,
      })
    : h("audio", {
        class: "att-audio",
        controls: true,
        preload: "metadata",
        "data-testid": "attachment-audio",
        "aria-label": attachment.filename,
      });
  const note = h("span", { class: "att-player-note", role: "alert", hidden: true });
  let retried = false;
  let resumeAt = 0;

  async function load(fresh: boolean): Promise<void> {
    try {
      player.src = await context.links.url(attachment.media_id, fresh);
    } catch {
      note.hidden = false;
      setText(note, "Unavailable right now.");
    }
  }

  player.addEventListener("loadedmetadata", () => {
    if (resumeAt > 0) player.currentTime = resumeAt;
    resumeAt = 0;
    note.hidden = true;
  });
  player.addEventListener("error", () => {
    if (!player.getAttribute("src")) return;
    if (!retried) {
      retried = true; // perhaps expired: one fresh URL, at the same position
      resumeAt = player.currentTime;
      void load(true);
      return;
    }
    note.hidden = false;
    setText(note, "This file can't be played.");
  });
  // A long pause may outlive the URL: get a new one on the next play if it is old.
  player.addEventListener("play", () => {
    retried = false;
  });
  void load(false);
  const head = video
    ? null
    : h(
        "span",
        { class: "att-audio-head" },
        h("span", { class: "att-audio-name" }, attachment.filename),
        h("span", { class: "att-file-meta" }, formatSize(attachment.size)),
      );
  return h(
    "div",
    { class: video ? "att-player att-player-video" : "att-player att-player-audio" },
    head,
    player,
    note,
  );
}

// -- other files ----------------------------------------------------------------------------------

function fileCard(
  attachment: { filename: string; content_type: string; size: number },
  onClick: (() => void) | null,
): HTMLElement {
  const label = typeLabel(attachment.content_type, attachment.filename);
  const size = formatSize(attachment.size);
  const children = [
    h("span", { class: "att-file-icon", "aria-hidden": "true" }, icon("file")),
    h(
      "span",
      { class: "att-file-text" },
      h("span", { class: "att-file-name", "data-testid": "attachment-name" }, attachment.filename),
      h("span", { class: "att-file-meta" }, `${label} · ${size}`),
    ),
  ];
  if (!onClick) return h("div", { class: "att-file" }, ...children);
  return h(
    "button",
    {
      type: "button",
      class: "att-file",
      "data-testid": "attachment-file",
      "aria-label": `Download ${attachment.filename}, ${size}`,
      title: `Download ${attachment.filename}`,
      onclick: onClick,
    },
    ...children,
    h("span", { class: "att-file-download", "aria-hidden": "true" }, icon("download")),
  );
}

// -- uploads on their way -----------------------------------------------------------------------------

const STATE_TEXT: Record<PendingUpload["state"], string> = {
  requesting: "Preparing…",
  uploading: "Uploading…",
  announcing: "Sharing…",
  failed: "Not sent",
};

/** What an upload shows while it goes (or after it failed). */
export function uploadPreview(upload: PendingUpload): HTMLElement {
  const preview = upload.previewUrl
    ? h(
        "span",
        { class: "att-image att-upload-image", "data-state": "loaded" },
        h("img", { class: "att-img", src: upload.previewUrl, alt: upload.filename }),
      )
    : fileCard(
        { filename: upload.filename, content_type: upload.contentType, size: upload.size },
        null,
      );
  const going = upload.state !== "failed";
  const percent = upload.state === "uploading" ? upload.progress : upload.state === "announcing" ? 100 : 0;
  const bar = going
    ? h(
        "div",
        {
          class: "upload-progress",
          role: "progressbar",
          "aria-label": `Uploading ${upload.filename}`,
          "aria-valuemin": 0,
          "aria-valuemax": 100,
          "aria-valuenow": percent,
          "data-testid": "upload-progress",
        },
        h("span", { class: "upload-progress-bar", style: `width: ${percent}%` }),
      )
    : null;
  const status = going
    ? h(
        "span",
        { class: "upload-status", "data-testid": "upload-status" },
        upload.state === "uploading" ? `Uploading… ${percent}%` : STATE_TEXT[upload.state],
      )
    : null;
  return h("div", { class: "att-upload" }, preview, bar, status);
}
