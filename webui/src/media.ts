// Sharing files: uploads on their way into a room, and short-lived download URLs.
//
// An upload is three steps (docs/protocol.md, "Media"): POST /api/media/uploads for a pre-signed
// PUT, the PUT itself (XMLHttpRequest, for upload progress), then `media:uploaded` over the
// socket, whose ack is the chat message with the attachment. Uploads in flight are shown in the
// conversation with their progress; a failed one keeps its reason and can be retried or
// discarded. They do not survive a reload (a File cannot be stored).
//
// Download URLs come from GET /api/media/{id} (JSON form) and expire after `expires_in` seconds:
// they are reused only well within that, and fetched again when an element fails to load.

import * as api from "./api.ts";
import { ApiError, NetworkError, serverNow } from "./api.ts";
import type { Chat } from "./chat.ts";
import { Emitter } from "./emitter.ts";
import type { Attachment } from "./protocol.ts";
import type { Session } from "./session.ts";

const ACK_TIMEOUT_MS = 15_000;
const URL_MARGIN_MS = 30_000; // a cached URL must have at least this much life left

export type UploadState = "requesting" | "uploading" | "announcing" | "failed";

export interface PendingUpload {
  id: string;
  roomId: number;
  file: File;
  filename: string;
  contentType: string;
  size: number;
  caption: string;
  /** Unix seconds, server clock (estimated). */
  createdAt: number;
  state: UploadState;
  /** 0-100, whole percent of the PUT. */
  progress: number;
  error: string | null;
  errorCode: string | null;
  /** Whether trying again can help (not for a refused type or size). */
  retryable: boolean;
  /** A blob: URL of the file, for image previews. */
  previewUrl: string | null;
  /** Known once the server accepted the upload request. */
  mediaId: string | null;
  /** The bytes are in the store; only the announcement is left. */
  stored: boolean;
}

export interface UploadEvents extends Record<string, unknown> {
  changed: { roomId: number };
}

const TYPES_BY_EXTENSION: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  mp4: "video/mp4",
  m4v: "video/mp4",
  webm: "video/webm",
  mp3: "audio/mpeg",
  ogg: "audio/ogg",
  oga: "audio/ogg",
  opus: "audio/ogg",
  wav: "audio/wav",
  pdf: "application/pdf",
  txt: "text/plain",
  zip: "application/zip",
};

/** The file's type as the server will judge it (lowercase; guessed from the name if unknown). */
export function contentTypeOf(file: File): string {
  const declared = file.type.split(";")[0].trim().toLowerCase();
  if (declared) return declared;
  const extension = file.name.split(".").pop()?.toLowerCase() ?? "";
  return TYPES_BY_EXTENSION[extension] ?? "application/octet-stream";
}

/** "12 KB", "3.4 MB". */
export function formatSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = value < 10 ? 1 : 0;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

export type AttachmentKind = "image" | "video" | "audio" | "file";

export function attachmentKind(contentType: string): AttachmentKind {
  if (contentType.startsWith("image/") && contentType !== "image/svg+xml") return "image";
  if (contentType.startsWith("video/")) return "video";
  if (contentType.startsWith("audio/")) return "audio";
  return "file";
}

/** A short label of a file type: "PDF", "ZIP", "Text". */
export function typeLabel(contentType: string, filename: string): string {
  if (contentType === "text/plain") return "Text";
  const extension = filename.includes(".") ? filename.split(".").pop() : "";
  if (extension && extension.length <= 5) return extension.toUpperCase();
  const sub = contentType.split("/")[1] ?? "";
  return sub.length <= 8 ? sub.toUpperCase() : "File";
}

/** One line for previews: the caption, else what the file is. */
export function attachmentSummary(attachment: Attachment, caption: string): string {
  if (caption.trim()) return caption;
  switch (attachmentKind(attachment.content_type)) {
    case "image":
      return "Photo";
    case "video":
      return "Video";
    case "audio":
      return "Audio";
    default:
      return attachment.filename;
  }
}

const UPLOAD_ERRORS: Record<string, string> = {
  media_type_not_allowed: "Files of this type can't be shared here.",
  payload_too_large: "This file is too large to share.",
  storage_unavailable: "File storage is unavailable right now.",
  upload_mismatch: "The upload arrived damaged and was discarded.",
  upload_expired: "The upload took too long and expired.",
  upload_missing: "The file did not reach the storage.",
  not_found: "This conversation is no longer available.",
  forbidden: "You can't share files here.",
};

let sequence = 0;

export class Uploads extends Emitter<UploadEvents> {
  private readonly session: Session;
  private readonly chat: Chat;
  private items: PendingUpload[] = [];
  private readonly requests = new Map<string, XMLHttpRequest>();
  private readonly aborts = new Map<string, AbortController>();
  private disposed = false;

  constructor(session: Session, chat: Chat) {
    super();
    this.session = session;
    this.chat = chat;
  }

  list(roomId: number): PendingUpload[] {
    return this.items.filter((u) => u.roomId === roomId);
  }

  /** Start sharing a file into a room (the caption goes with it). */
  add(roomId: number, file: File, caption: string): PendingUpload {
    const contentType = contentTypeOf(file);
    sequence += 1;
    const upload: PendingUpload = {
      id: `u${Date.now().toString(36)}${sequence}`,
      roomId,
      file,
      filename: file.name || "file",
      contentType,
      size: file.size,
      caption,
      createdAt: serverNow() / 1000,
      state: "requesting",
      progress: 0,
      error: null,
      errorCode: null,
      retryable: true,
      previewUrl: attachmentKind(contentType) === "image" ? URL.createObjectURL(file) : null,
      mediaId: null,
      stored: false,
    };
    this.items.push(upload);
    this.changed(upload);
    void this.run(upload);
    return upload;
  }

  retry(id: string): void {
    const upload = this.items.find((u) => u.id === id);
    if (!upload || upload.state !== "failed" || !upload.retryable) return;
    upload.error = null;
    upload.errorCode = null;
    upload.state = upload.stored ? "announcing" : "requesting";
    this.changed(upload);
    void this.run(upload);
  }

  /** Give up on an upload (cancels it if still going). */
  discard(id: string): void {
    const upload = this.items.find((u) => u.id === id);
    if (!upload) return;
    this.requests.get(id)?.abort();
    this.aborts.get(id)?.abort();
    this.remove(upload);
  }

  private remove(upload: PendingUpload): void {
    this.items = this.items.filter((u) => u !== upload);
    this.requests.delete(upload.id);
    this.aborts.delete(upload.id);
    if (upload.previewUrl) URL.revokeObjectURL(upload.previewUrl);
    this.changed(upload);
  }

  private changed(upload: PendingUpload): void {
    if (!this.disposed) this.emit("changed", { roomId: upload.roomId });
  }

  private live(upload: PendingUpload): boolean {
    return !this.disposed && this.items.includes(upload);
  }

  private fail(upload: PendingUpload, code: string, text?: string): void {
    if (!this.live(upload)) return;
    upload.state = "failed";
    upload.errorCode = code;
    upload.error = text ?? UPLOAD_ERRORS[code] ?? "The file could not be shared.";
    upload.retryable = code !== "media_type_not_allowed" && code !== "payload_too_large";
    // These void the stored object: start over with a new upload.
    if (["upload_mismatch", "upload_expired", "upload_missing", "not_found"].includes(code)) {
      upload.stored = false;
    }
    this.changed(upload);
  }

  private async run(upload: PendingUpload): Promise<void> {
    if (!upload.stored) {
      const ok = await this.transfer(upload);
      if (!ok) return;
    }
    await this.announce(upload);
  }

  /** Steps 1 and 2: a pre-signed URL, then the bytes. */
  private async transfer(upload: PendingUpload): Promise<boolean> {
    upload.state = "requesting";
    upload.progress = 0;
    this.changed(upload);
    let ticket;
    try {
      ticket = await this.session.authed((token) =>
        api.requestUpload(token, {
          room_id: upload.roomId,
          filename: upload.filename,
          content_type: upload.contentType,
          size: upload.size,
        }),
      );
    } catch (error) {
      if (error instanceof ApiError) {
        if (error.code === "rate_limited") {
          this.fail(upload, error.code, `Too many uploads — try again in ${error.retryAfter ?? 1}s.`);
        } else {
          this.fail(upload, error.code);
        }
      } else {
        if (!(error instanceof NetworkError)) console.error(error);
        this.fail(upload, "offline", "Can't reach the appliance right now.");
      }
      return false;
    }
    if (!this.live(upload)) return false;
    upload.mediaId = ticket.media_id;
    upload.state = "uploading";
    this.changed(upload);
    const contentType = ticket.upload.headers["Content-Type"] ?? upload.contentType;
    const status = await new Promise<number>((resolve) => {
      const xhr = new XMLHttpRequest();
      this.requests.set(upload.id, xhr);
      xhr.open(ticket.upload.method || "PUT", ticket.upload.url);
      // Exactly the signed type; the browser sets Content-Length from the body.
      xhr.setRequestHeader("Content-Type", contentType);
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable || !this.live(upload)) return;
        const percent = Math.min(100, Math.floor((event.loaded / event.total) * 100));
        if (percent !== upload.progress) {
          upload.progress = percent;
          this.changed(upload);
        }
      });
      xhr.addEventListener("load", () => resolve(xhr.status));
      xhr.addEventListener("error", () => resolve(0));
      xhr.addEventListener("abort", () => resolve(-1));
      xhr.addEventListener("timeout", () => resolve(0));
      xhr.send(upload.file);
    });
    this.requests.delete(upload.id);
    if (status === -1 || !this.live(upload)) return false;
    if (status >= 200 && status < 300) {
      upload.stored = true;
      upload.progress = 100;
      return true;
    }
    if (status === 0) this.fail(upload, "offline", "The upload was interrupted.");
    else if (status === 413) this.fail(upload, "payload_too_large");
    else if (status === 503) this.fail(upload, "storage_unavailable");
    else if (status === 403) this.fail(upload, "upload_refused", "The storage refused the upload.");
    else this.fail(upload, "upload_failed", `The upload failed (HTTP ${status}).`);
    return false;
  }

  /** Step 3: tell the server; its ack is the message. */
  private async announce(upload: PendingUpload): Promise<void> {
    if (!this.live(upload) || upload.mediaId === null) return;
    upload.state = "announcing";
    this.changed(upload);
    const socket = this.session.socket;
    if (!socket.connected) {
      this.fail(upload, "offline", "Not sent: no connection. Retry when it is back.");
      return;
    }
    let ack;
    try {
      const payload: { media_id: string; caption?: string } = { media_id: upload.mediaId };
      if (upload.caption) payload.caption = upload.caption;
      ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("media:uploaded", payload);
    } catch {
      this.fail(upload, "timeout", "The appliance didn't answer. Try again.");
      return;
    }
    if (!this.live(upload)) return;
    if (!ack.ok) {
      const error = ack.error;
      if (error.code === "rate_limited") {
        const seconds = Math.max(1, Math.ceil(error.retry_after ?? 1));
        this.fail(upload, error.code, `Slow down — try again in ${seconds}s.`);
      } else if (error.code === "invalid_request") {
        this.fail(upload, error.code, error.message || "That can't be sent.");
      } else {
        this.fail(upload, error.code);
      }
      return;
    }
    this.chat.receiveOwn(ack.message);
    this.remove(upload);
  }

  dispose(): void {
    this.disposed = true;
    for (const xhr of this.requests.values()) xhr.abort();
    for (const upload of this.items) if (upload.previewUrl) URL.revokeObjectURL(upload.previewUrl);
    this.items = [];
    this.clearListeners();
  }
}

/** Short-lived download URLs, reused while they have enough life left. */
export class MediaLinks {
  private readonly session: Session;
  private readonly cache = new Map<string, { url: string; expiresAt: number }>();
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(session: Session) {
    this.session = session;
  }

  /** A URL for the file; `fresh` skips the cache (the last one failed to load). */
  url(mediaId: string, fresh = false): Promise<string> {
    const cached = this.cache.get(mediaId);
    if (!fresh && cached && cached.expiresAt - Date.now() > URL_MARGIN_MS) {
      return Promise.resolve(cached.url);
    }
    if (fresh) this.cache.delete(mediaId);
    const running = this.inflight.get(mediaId);
    if (running) return running;
    const started = Date.now();
    const request = this.session
      .authed((token) => api.mediaUrl(token, mediaId))
      .then((answer) => {
        this.cache.set(mediaId, {
          url: answer.url,
          expiresAt: started + answer.expires_in * 1000,
        });
        return answer.url;
      })
      .finally(() => this.inflight.delete(mediaId));
    this.inflight.set(mediaId, request);
    return request;
  }
}
