// One conversation: the header (name, presence or members), the message list with history paging
// and day separators, the composer, typing indicators and read receipts.

import {
  MAX_TEXT_LENGTH,
  textLength,
  type Chat,
  type PendingMessage,
  type RoomEntry,
} from "../chat.ts";
import type { MediaLinks, PendingUpload, Uploads } from "../media.ts";
import type { People } from "../people.ts";
import type { Attachment, ChatMessage } from "../protocol.ts";
import { avatar, groupAvatar, hueOf } from "../ui/avatar.ts";
import { confirmDialog } from "../ui/dialog.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { clockTime, dayKey, dayLabel, fullTime } from "../ui/time.ts";
import { statusText } from "./people-panel.ts";
import { attachmentElement, uploadPreview, type AttachmentContext } from "./attachments.ts";
import { typingText } from "./rooms-panel.ts";

const RUN_GAP_S = 5 * 60; // messages of one sender closer than this form one run
const NEAR_BOTTOM_PX = 80;
const LOAD_OLDER_PX = 300;
const COUNTER_FROM = MAX_TEXT_LENGTH - 400; // show the count when this close to the limit
const COMPOSER_MAX_PX = 160;

/** "Message bob"; something short for long names, as a placeholder must fit on one line. */
function placeholderFor(title: string): string {
  return title.length <= 24 ? `Message ${title}` : "Write a message…";
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString()} ${word}${n === 1 ? "" : "s"}`;
}

/** Unsent text per room, kept while the page is open. */
const drafts = new Map<number, string>();

/** What the conversation needs to offer calls (direct rooms). */
export interface CallControls {
  /** Why calling this person is not possible now, or null when it is. */
  unavailable(userId: number): string | null;
  start(peer: { user_id: number; username: string }, video: boolean): void;
}

export interface ConversationOptions {
  chat: Chat;
  people: People;
  uploads: Uploads;
  links: MediaLinks;
  calls: CallControls;
  roomId: number;
  onBack: () => void;
  toast: (text: string) => void;
  /** Where dialogs go (inside the app, so they inherit its styles). */
  dialogHost: HTMLElement;
}

export interface ConversationView {
  roomId: number;
  element: HTMLElement;
  /** Presence or the clock changed. */
  refresh(): void;
  focusComposer(): void;
  focusTitle(): void;
  dispose(): void;
}

interface MessageModel {
  key: string;
  id: number | null;
  clientMsgId: string;
  own: boolean;
  senderId: number;
  senderName: string;
  text: string;
  createdAt: number;
  edited: boolean;
  deleted: boolean;
  state: "sent" | "queued" | "sending" | "failed";
  error: string | null;
  attachment: Attachment | null;
  /** An upload still on its way (key `u:`). */
  upload: PendingUpload | null;
  first: boolean;
  last: boolean;
  showSender: boolean;
  seen: boolean;
  offline: boolean;
}

interface Item {
  key: string;
  sig: string;
  build: () => HTMLElement;
}

// -- the header (shared with the "opening…" placeholder) -------------------------------------

interface Header {
  element: HTMLElement;
  name: HTMLElement;
  status: HTMLElement;
  dot: HTMLElement | null;
}

function header(
  title: string,
  kind: "direct" | "group",
  onBack: () => void,
  actions: HTMLElement | null = null,
): Header {
  const back = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon back",
      "aria-label": "Back to conversations",
      "data-testid": "back-to-people",
      onclick: onBack,
    },
    icon("back"),
  );
  const dot = kind === "direct" ? h("span", { class: "presence-dot" }) : null;
  const name = h(
    "h2",
    { class: "conversation-name", tabindex: -1, "data-testid": "conversation-name" },
    title,
  );
  const status = h("span", { class: "person-status", "data-testid": "conversation-status" });
  const element = h(
    "header",
    { class: "conversation-head" },
    back,
    h(
      "span",
      { class: "avatar-wrap" },
      kind === "direct" ? avatar(title) : groupAvatar(title),
      dot,
    ),
    h("div", { class: "person-text" }, name, status),
    actions,
  );
  return { element, name, status, dot };
}

/** While the direct room with someone is being opened (created on first use). */
export function openingConversation(options: {
  username: string;
  online: boolean;
  status: string;
  error: string | null;
  onBack: () => void;
  onRetry: () => void;
}): HTMLElement {
  const head = header(options.username, "direct", options.onBack);
  const presence = options.online ? "online" : "offline";
  if (head.dot) setAttr(head.dot, "data-presence", presence);
  setText(head.status, options.status);
  const body = options.error
    ? h(
        "div",
        { class: "empty-state" },
        h("p", { class: "empty-text", role: "alert" }, options.error),
        h(
          "button",
          { type: "button", class: "btn btn-secondary btn-sm", onclick: options.onRetry },
          "Try again",
        ),
      )
    : h(
        "div",
        { class: "empty-state", role: "status" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        h("span", { class: "visually-hidden" }, "Opening the conversation…"),
      );
  return h(
    "section",
    {
      class: "conversation",
      "data-testid": "conversation",
      "data-username": options.username,
      "data-presence": presence,
      "aria-label": `Conversation with ${options.username}`,
      "aria-busy": options.error ? null : "true",
    },
    head.element,
    h("div", { class: "conversation-body" }, body),
  );
}

// -- the conversation ----------------------------------------------------------------------------

export function conversationView(options: ConversationOptions): ConversationView | null {
  const { chat, people, roomId } = options;
  const initial = chat.get(roomId);
  if (!initial) return null;
  const kind = initial.room.kind;
  const group = kind === "group";
  let title = chat.title(initial);

  const initialPeer = chat.peer(initial);
  const callButton = (video: boolean): HTMLButtonElement =>
    h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon call-start",
        "data-testid": video ? "call-video" : "call-audio",
        "aria-label": `${video ? "Video call" : "Call"} ${title}`,
        title: video ? "Video call" : "Audio call",
        onclick: () => {
          const peer = chat.get(roomId) ? chat.peer(chat.get(roomId) as RoomEntry) : null;
          if (peer) options.calls.start(peer, video);
        },
      },
      icon(video ? "video" : "phone"),
    );
  const audioCall = initialPeer ? callButton(false) : null;
  const videoCall = initialPeer ? callButton(true) : null;
  const head = header(
    title,
    kind,
    options.onBack,
    initialPeer ? h("div", { class: "conversation-actions" }, audioCall, videoCall) : null,
  );
  const attachments: AttachmentContext = {
    links: options.links,
    toast: options.toast,
    dialogHost: options.dialogHost,
  };
  /** Attachment elements by media id, kept across re-renders so players keep playing. */
  const attachmentNodes = new Map<string, HTMLElement>();

  // Message list.
  const top = h("div", { class: "history-top" });
  const list = h("ol", { class: "messages", "aria-label": "Messages" });
  const body = h(
    "div",
    { class: "conversation-body messages-scroll", "data-testid": "message-list", tabindex: -1 },
    top,
    list,
  );
  const jumpLabel = h("span", {}, "");
  const jump = h(
    "button",
    {
      type: "button",
      class: "jump-latest",
      "data-testid": "jump-latest",
      "aria-label": "Jump to the latest messages",
      hidden: true,
      onclick: () => scrollToBottom(true),
    },
    icon("arrowDown"),
    jumpLabel,
  );

  // Typing indicator and composer.
  const typingLabel = h("span", { class: "typing-text" });
  const typing = h(
    "div",
    { class: "typing", "data-testid": "typing-indicator", "aria-live": "polite" },
    h(
      "span",
      { class: "typing-dots", "aria-hidden": "true" },
      h("span", {}),
      h("span", {}),
      h("span", {}),
    ),
    typingLabel,
  );
  typing.hidden = true;

  const editPreview = h("span", { class: "edit-preview" });
  const editBanner = h(
    "div",
    { class: "edit-banner", "data-testid": "edit-banner", hidden: true },
    icon("edit"),
    h("span", { class: "edit-text" }, h("strong", {}, "Edit message"), editPreview),
    h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon btn-icon-sm",
        "aria-label": "Cancel editing",
        "data-testid": "edit-cancel",
        onclick: () => cancelEdit(true),
      },
      icon("close"),
    ),
  );
  const textarea = h("textarea", {
    class: "composer-input",
    rows: 1,
    "aria-label": `Message ${title}`,
    placeholder: placeholderFor(title),
    "data-testid": "composer",
    enterkeyhint: "send",
    autocomplete: "off",
  });
  const counter = h("span", {
    class: "composer-counter",
    "data-testid": "composer-counter",
    "aria-live": "polite",
    hidden: true,
  });
  const sendButton = h(
    "button",
    {
      type: "submit",
      class: "btn btn-primary btn-icon send",
      "aria-label": "Send",
      title: "Send (Enter)",
      "data-testid": "send",
      disabled: true,
    },
    icon("send"),
  );
  const fileInput = h("input", {
    type: "file",
    multiple: true,
    class: "visually-hidden",
    tabindex: -1,
    "aria-hidden": "true",
    "data-testid": "attach-input",
  });
  const attachButton = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon attach",
      "aria-label": "Attach files",
      title: "Attach files",
      "data-testid": "attach",
      onclick: () => fileInput.click(),
    },
    icon("paperclip"),
  );
  const form = h(
    "form",
    { class: "composer", "data-testid": "composer-form", "aria-label": "Write a message" },
    editBanner,
    h("div", { class: "composer-row" }, attachButton, fileInput, textarea, sendButton),
    counter,
  );
  const dropZone = h(
    "div",
    { class: "drop-zone", "data-testid": "drop-zone", hidden: true, "aria-hidden": "true" },
    h(
      "div",
      { class: "drop-zone-box" },
      icon("upload", "drop-zone-icon"),
      h("strong", {}, "Drop files to share"),
      h("span", {}, `with ${title}`),
    ),
  );

  const element = h(
    "section",
    {
      class: "conversation",
      "data-testid": "conversation",
      "data-room-id": roomId,
      "data-kind": kind,
      "aria-label": group ? title : `Conversation with ${title}`,
    },
    head.element,
    h("div", { class: "conversation-scroll-wrap" }, body, jump),
    h("div", { class: "conversation-foot" }, typing, form),
    dropZone,
  );

  // -- state ------------------------------------------------------------------------------
  const nodes = new Map<string, { el: HTMLElement; sig: string }>();
  let stick = true; // follow new messages at the bottom
  let unseen = 0;
  let lastOthersId = 0;
  let editing: { id: number; original: string } | null = null;
  let draftBeforeEdit = "";
  let busy = false;
  let scheduled = false;
  let forceBottom = true;

  // -- header -------------------------------------------------------------------------------
  function updateHeader(entry: RoomEntry): void {
    const newTitle = chat.title(entry);
    if (newTitle !== title) {
      title = newTitle;
      setText(head.name, title);
      setAttr(textarea, "aria-label", `Message ${title}`);
      setAttr(textarea, "placeholder", placeholderFor(title));
    }
    const peer = chat.peer(entry);
    if (peer) {
      const person = people.get(peer.user_id);
      const presence = person?.online ? "online" : "offline";
      setAttr(element, "data-username", peer.username);
      setAttr(element, "data-presence", presence);
      if (head.dot) setAttr(head.dot, "data-presence", presence);
      setText(head.status, person ? statusText(person) : "");
      const why = options.calls.unavailable(peer.user_id);
      for (const button of [audioCall, videoCall]) {
        if (!button) continue;
        button.disabled = why !== null;
        const what = button === videoCall ? "Video call" : "Audio call";
        setAttr(button, "title", why ?? what);
      }
      return;
    }
    const members = entry.room.members;
    const online = members.filter(
      (m) => m.user_id === chat.me || people.get(m.user_id)?.online,
    ).length;
    setText(
      head.status,
      `${members.length} ${members.length === 1 ? "member" : "members"} · ${online} online`,
    );
    setAttr(
      head.status,
      "title",
      members
        .map((m) => (m.user_id === chat.me ? `${m.username} (you)` : m.username))
        .join(", "),
    );
  }

  // -- messages -----------------------------------------------------------------------------
  function models(entry: RoomEntry): MessageModel[] {
    const offline = !chat.connected;
    const out: MessageModel[] = chat.messages(roomId).map((m: ChatMessage) => ({
      key: m.sender.user_id === chat.me ? `c:${m.client_msg_id}` : `m:${m.id}`,
      id: m.id,
      clientMsgId: m.client_msg_id,
      own: m.sender.user_id === chat.me,
      senderId: m.sender.user_id,
      senderName: m.sender.username,
      text: m.text,
      createdAt: m.created_at,
      edited: m.edited_at !== undefined,
      deleted: m.deleted === true,
      state: "sent",
      error: null,
      attachment: m.attachment ?? null,
      upload: null,
      first: false,
      last: false,
      showSender: false,
      seen: false,
      offline: false,
    }));
    for (const p of chat.pending(roomId) as PendingMessage[]) {
      out.push({
        key: `c:${p.clientMsgId}`,
        id: null,
        clientMsgId: p.clientMsgId,
        own: true,
        senderId: chat.me,
        senderName: "",
        text: p.text,
        createdAt: p.createdAt,
        edited: false,
        deleted: false,
        state: p.state,
        error: p.error,
        attachment: null,
        upload: null,
        first: false,
        last: false,
        showSender: false,
        seen: false,
        offline,
      });
    }
    for (const u of options.uploads.list(roomId)) {
      out.push({
        key: `u:${u.id}`,
        id: null,
        clientMsgId: u.id,
        own: true,
        senderId: chat.me,
        senderName: "",
        text: u.caption,
        createdAt: u.createdAt,
        edited: false,
        deleted: false,
        state: u.state === "failed" ? "failed" : "sending",
        error: u.error,
        attachment: null,
        upload: u,
        first: false,
        last: false,
        showSender: false,
        seen: false,
        offline,
      });
    }
    const joins = (a: MessageModel | undefined, b: MessageModel | undefined): boolean =>
      a !== undefined &&
      b !== undefined &&
      a.senderId === b.senderId &&
      dayKey(a.createdAt) === dayKey(b.createdAt) &&
      b.createdAt - a.createdAt < RUN_GAP_S;
    out.forEach((m, i) => {
      m.first = !joins(out[i - 1], m);
      m.last = !joins(m, out[i + 1]);
      m.showSender = group && !m.own && m.first;
    });
    // "Seen" under my last message in a direct room, once the other person has read it.
    const peer = chat.peer(entry);
    if (peer) {
      const seen = chat.seenBy(entry, peer.user_id);
      const lastOwn = out.findLast((m) => m.own && m.id !== null && !m.deleted);
      if (lastOwn && lastOwn.id !== null && seen >= lastOwn.id) lastOwn.seen = true;
    }
    return out;
  }

  function items(entry: RoomEntry): Item[] {
    const out: Item[] = [];
    let day = "";
    for (const m of models(entry)) {
      const key = dayKey(m.createdAt);
      if (key !== day) {
        day = key;
        const label = dayLabel(m.createdAt);
        out.push({ key: `d:${key}`, sig: label, build: () => separator(label) });
      }
      const sig = JSON.stringify({
        ...m,
        upload: m.upload && {
          state: m.upload.state,
          progress: m.upload.progress,
          error: m.upload.error,
          retryable: m.upload.retryable,
        },
      });
      out.push({ key: m.key, sig, build: () => messageElement(m) });
    }
    return out;
  }

  function separator(label: string): HTMLElement {
    return h(
      "li",
      { class: "day-separator", "data-testid": "day-separator", role: "separator" },
      h("span", {}, label),
    );
  }

  function messageElement(m: MessageModel): HTMLElement {
    const classes = ["msg", m.own ? "msg-own" : "msg-other"];
    if (m.first) classes.push("is-first");
    if (m.last) classes.push("is-last");
    const stateIcon =
      m.state === "queued" || m.state === "sending"
        ? h(
            "span",
            {
              class: "msg-state",
              "data-testid": "message-pending",
              title: m.offline ? "Waiting for the connection" : "Sending…",
            },
            icon("pending"),
            h("span", { class: "visually-hidden" }, m.offline ? "Waiting to send" : "Sending"),
          )
        : null;
    const time = h(
      "time",
      { datetime: new Date(m.createdAt * 1000).toISOString(), title: fullTime(m.createdAt) },
      clockTime(m.createdAt),
    );
    const meta = h(
      "span",
      { class: "msg-meta" },
      m.edited && !m.deleted
        ? h("span", { class: "msg-edited", "data-testid": "message-edited" }, "edited")
        : null,
      time,
      stateIcon,
    );
    const content = m.deleted
      ? h(
          "span",
          { class: "msg-text msg-deleted", "data-testid": "message-deleted" },
          icon("ban"),
          "This message was deleted",
        )
      : h("span", { class: "msg-text", "data-testid": "message-text" }, m.text);
    let media: HTMLElement | null = null;
    if (!m.deleted && m.attachment) media = attachmentNode(m.attachment);
    else if (m.upload) media = uploadPreview(m.upload);
    if (media) classes.push("has-attachment");
    const caption = media && !m.text ? null : content;
    const bubble = h(
      "div",
      { class: media ? "msg-bubble msg-bubble-media" : "msg-bubble" },
      m.showSender
        ? null
        : h("span", { class: "visually-hidden" }, `${m.own ? "You" : m.senderName}: `),
      ...(media
        ? [media, h("div", { class: caption ? "msg-caption" : "msg-caption is-empty" }, caption, meta)]
        : [content, meta]),
    );
    const actions =
      m.own && m.state === "sent" && !m.deleted && m.id !== null
        ? h(
            "div",
            { class: "msg-actions" },
            m.text === ""
              ? null
              : h(
              "button",
              {
                type: "button",
                class: "msg-action",
                title: "Edit",
                "aria-label": "Edit message",
                "data-testid": "message-edit",
                onclick: () => startEdit(m),
              },
              icon("edit"),
            ),
            h(
              "button",
              {
                type: "button",
                class: "msg-action msg-action-danger",
                title: "Delete",
                "aria-label": "Delete message",
                "data-testid": "message-delete",
                onclick: () => void deleteMessage(m),
              },
              icon("trash"),
            ),
          )
        : null;
    let sender: HTMLElement | null = null;
    if (m.showSender) {
      sender = h("div", { class: "msg-sender", "data-testid": "message-sender" }, m.senderName);
      sender.style.setProperty("--avatar-hue", String(hueOf(m.senderName)));
    }
    const failed =
      m.state === "failed"
        ? h(
            "div",
            { class: "msg-failed", "data-testid": "message-failed" },
            icon("alert"),
            h("span", {}, m.error ?? "Not sent."),
            h(
              "button",
              {
                type: "button",
                class: "link-button",
                "data-testid": "message-retry",
                hidden: m.upload !== null && !m.upload.retryable,
                onclick: () =>
                  m.upload ? options.uploads.retry(m.upload.id) : chat.retry(m.clientMsgId),
              },
              "Retry",
            ),
            h(
              "button",
              {
                type: "button",
                class: "link-button",
                "data-testid": "message-discard",
                onclick: () =>
                  m.upload ? options.uploads.discard(m.upload.id) : chat.discard(m.clientMsgId),
              },
              "Discard",
            ),
          )
        : null;
    const seen = m.seen
      ? h("div", { class: "msg-receipt", "data-testid": "message-seen" }, icon("check"), "Seen")
      : null;
    const cancelUpload =
      m.upload && m.upload.state !== "failed"
        ? h(
            "div",
            { class: "msg-actions" },
            h(
              "button",
              {
                type: "button",
                class: "msg-action msg-action-danger",
                title: "Cancel upload",
                "aria-label": `Cancel uploading ${m.upload.filename}`,
                "data-testid": "upload-cancel",
                onclick: () => m.upload && options.uploads.discard(m.upload.id),
              },
              icon("close"),
            ),
          )
        : null;
    return h(
      "li",
      {
        class: classes.join(" "),
        "data-testid": m.upload ? "upload" : "message",
        "data-upload-state": m.upload?.state,
        "data-error-code": m.upload?.errorCode ?? undefined,
        "data-content-type": (m.attachment ?? m.upload)
          ? (m.attachment?.content_type ?? m.upload?.contentType)
          : undefined,
        "data-own": m.own ? "true" : "false",
        "data-state": m.state,
        "data-message-id": m.id ?? undefined,
        "data-client-msg-id": m.clientMsgId,
        "data-sender": m.senderName || undefined,
      },
      sender,
      h("div", { class: "msg-line" }, bubble, actions ?? cancelUpload),
      failed,
      seen,
    );
  }

  function attachmentNode(attachment: Attachment): HTMLElement {
    let node = attachmentNodes.get(attachment.media_id);
    if (!node) {
      node = attachmentElement(attachment, attachments);
      attachmentNodes.set(attachment.media_id, node);
    }
    return node;
  }

  function pruneAttachments(): void {
    for (const [id, node] of attachmentNodes) {
      if (!list.contains(node)) {
        node.querySelector<HTMLMediaElement>("video, audio")?.pause();
        attachmentNodes.delete(id);
      }
    }
  }

  function renderTop(entry: RoomEntry): void {
    const window = entry.window;
    const hasContent = chat.messages(roomId).length > 0 || chat.pending(roomId).length > 0;
    let wanted: string;
    if (window?.error) wanted = `error:${window.error}`;
    else if (!window || !window.loaded) wanted = "loading";
    else if (window.nextBefore !== null) {
      wanted = window.loading === "older" ? "older-busy" : "older";
    }
    else wanted = hasContent ? "start" : "empty";
    if (top.dataset.state === wanted) return;
    top.dataset.state = wanted;
    if (window?.error) {
      top.replaceChildren(
        h(
          "div",
          { class: "alert alert-error history-error", role: "alert" },
          h("span", { class: "alert-icon" }, icon("alert")),
          h("span", { class: "alert-text" }, window.error),
          h(
            "button",
            {
              type: "button",
              class: "btn btn-secondary btn-sm",
              "data-testid": "history-retry",
              onclick: () => chat.retryHistory(roomId),
            },
            "Try again",
          ),
        ),
      );
    } else if (wanted === "loading") {
      top.replaceChildren(
        h(
          "div",
          { class: "history-loading", role: "status", "data-testid": "messages-loading" },
          h("span", { class: "spinner", "aria-hidden": "true" }),
          h("span", {}, "Loading messages…"),
        ),
      );
    } else if (wanted === "older" || wanted === "older-busy") {
      const busyOlder = wanted === "older-busy";
      top.replaceChildren(
        h(
          "button",
          {
            type: "button",
            class: `btn btn-secondary btn-sm load-earlier${busyOlder ? " is-busy" : ""}`,
            "data-testid": "load-earlier",
            disabled: busyOlder,
            onclick: () => void chat.loadOlder(roomId),
          },
          h("span", { class: "spinner", "aria-hidden": "true" }),
          busyOlder ? "Loading…" : "Load earlier messages",
        ),
      );
    } else if (wanted === "empty") {
      top.replaceChildren(
        h(
          "div",
          { class: "empty-state conversation-empty", "data-testid": "conversation-empty" },
          group ? groupAvatar(title, "lg") : avatar(title, "lg"),
          h(
            "h3",
            { class: "empty-title" },
            group
              ? `This is the start of “${title}”`
              : `This is the start of your conversation with ${title}`,
          ),
          h(
            "p",
            { class: "empty-text" },
            group ? "Say hello to the group." : "Messages will appear here.",
          ),
        ),
      );
    } else {
      top.replaceChildren(
        h(
          "div",
          { class: "conversation-start", "data-testid": "conversation-start" },
          group
            ? `This is the start of “${title}”`
            : `This is the start of your conversation with ${title}`,
        ),
      );
    }
  }

  function keyOf(el: Element): string | undefined {
    return (el as HTMLElement).dataset.key;
  }

  function reconcile(wanted: Item[]): void {
    const keys = new Set(wanted.map((i) => i.key));
    for (const [key, node] of nodes) {
      if (!keys.has(key)) {
        node.el.remove();
        nodes.delete(key);
      }
    }
    wanted.forEach((item, index) => {
      let node = nodes.get(item.key);
      if (!node || node.sig !== item.sig) {
        const el = item.build();
        el.dataset.key = item.key;
        const hadFocus = node?.el.contains(document.activeElement) ?? false;
        if (node) node.el.replaceWith(el);
        node = { el, sig: item.sig };
        nodes.set(item.key, node);
        if (hadFocus) el.querySelector<HTMLElement>("button")?.focus();
      }
      if (list.children[index] !== node.el) {
        list.insertBefore(node.el, list.children[index] ?? null);
      }
    });
  }

  /** The first message on screen and where it is, to keep it in place when content changes. */
  function anchor(): { key: string; offset: number } | null {
    const scrollTop = body.scrollTop;
    for (const child of list.children) {
      const el = child as HTMLElement;
      // Messages only: a day separator moves up when older messages of its day arrive.
      if (!el.classList.contains("msg")) continue;
      if (el.offsetTop + el.offsetHeight > scrollTop) {
        const key = keyOf(el);
        return key ? { key, offset: el.offsetTop - scrollTop } : null;
      }
    }
    return null;
  }

  function render(): void {
    scheduled = false;
    const entry = chat.get(roomId);
    if (!entry) return;
    updateHeader(entry);

    const kept = stick || forceBottom ? null : anchor();
    renderTop(entry);
    reconcile(items(entry));
    pruneAttachments();

    // New messages from others while scrolled up: count them on the jump button.
    let newestOthers = lastOthersId;
    let arrived = 0;
    for (const m of chat.messages(roomId)) {
      if (m.sender.user_id === chat.me || m.id <= lastOthersId) continue;
      arrived += 1;
      newestOthers = Math.max(newestOthers, m.id);
    }
    if (lastOthersId > 0 && !stick && !forceBottom) unseen += arrived;
    lastOthersId = newestOthers;

    if (stick || forceBottom) {
      body.scrollTop = body.scrollHeight;
      stick = true;
      forceBottom = false;
    } else if (kept) {
      const el = nodes.get(kept.key)?.el;
      if (el) body.scrollTop = el.offsetTop - kept.offset;
    }
    updateJump();
    updateTyping();
    if (editing) {
      const still = entry.window?.byId.get(editing.id);
      if (!still || still.deleted) cancelEdit(false);
    }
    maybeLoadOlder();
    maybeRead();
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(render);
  }

  function updateJump(): void {
    jump.hidden = stick;
    setText(jumpLabel, unseen > 0 ? `${plural(unseen, "new message")}` : "");
    jump.classList.toggle("has-label", unseen > 0);
  }

  function updateTyping(): void {
    const names = chat.typingNames(roomId);
    const text = group ? typingText(names, true) : names.length ? `${names[0]} is typing…` : "";
    typing.hidden = text === "";
    setText(typingLabel, text);
  }

  function scrollToBottom(smooth: boolean): void {
    stick = true;
    unseen = 0;
    body.scrollTo({ top: body.scrollHeight, behavior: smooth ? "smooth" : "auto" });
    updateJump();
    maybeRead();
  }

  function onScroll(): void {
    const distance = body.scrollHeight - body.scrollTop - body.clientHeight;
    stick = distance < NEAR_BOTTOM_PX;
    if (stick) unseen = 0;
    updateJump();
    maybeLoadOlder();
    maybeRead();
  }

  function maybeLoadOlder(): void {
    const window = chat.get(roomId)?.window;
    if (!window?.loaded || window.loading || window.nextBefore === null || window.error) return;
    // Near the top, or the page does not fill the screen (nothing to scroll).
    if (body.scrollTop < LOAD_OLDER_PX && !stick) void chat.loadOlder(roomId);
    else if (body.scrollHeight <= body.clientHeight && body.clientHeight > 0) {
      void chat.loadOlder(roomId);
    }
  }

  /** Read receipts: only what is on screen, in a visible and focused page. */
  function maybeRead(): void {
    if (!stick || !element.isConnected || element.offsetParent === null) return;
    if (document.visibilityState !== "visible" || !document.hasFocus()) return;
    void chat.markRead(roomId);
  }

  // -- composer -----------------------------------------------------------------------------
  function autosize(): void {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight, COMPOSER_MAX_PX)}px`;
    textarea.style.overflowY = textarea.scrollHeight > COMPOSER_MAX_PX ? "auto" : "hidden";
  }

  function updateComposer(): void {
    const text = textarea.value.trim();
    const length = textLength(text);
    const over = length > MAX_TEXT_LENGTH;
    sendButton.disabled = busy || length === 0 || over;
    setAttr(sendButton, "aria-label", editing ? "Save" : "Send");
    setAttr(sendButton, "title", editing ? "Save (Enter)" : "Send (Enter)");
    counter.hidden = length < COUNTER_FROM;
    if (!counter.hidden) {
      setText(
        counter,
        over
          ? `${plural(length - MAX_TEXT_LENGTH, "character")} over the limit of ` +
              MAX_TEXT_LENGTH.toLocaleString()
          : `${plural(MAX_TEXT_LENGTH - length, "character")} left`,
      );
    }
    counter.classList.toggle("is-over", over);
    setAttr(textarea, "aria-invalid", over ? "true" : null);
    autosize();
  }

  function onInput(): void {
    updateComposer();
    if (editing) return;
    drafts.set(roomId, textarea.value);
    chat.composerChanged(roomId, textarea.value);
  }

  function startEdit(m: MessageModel): void {
    if (m.id === null || m.deleted) return;
    if (!editing) draftBeforeEdit = textarea.value;
    chat.stopTyping(roomId);
    editing = { id: m.id, original: m.text };
    setText(editPreview, m.text.replace(/\s+/g, " "));
    editBanner.hidden = false;
    textarea.value = m.text;
    updateComposer();
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  }

  function cancelEdit(focus: boolean): void {
    if (!editing) return;
    editing = null;
    editBanner.hidden = true;
    textarea.value = draftBeforeEdit;
    draftBeforeEdit = "";
    updateComposer();
    if (focus) textarea.focus();
  }

  async function deleteMessage(m: MessageModel): Promise<void> {
    if (m.id === null) return;
    const confirmed = await confirmDialog(
      {
        title: "Delete message?",
        text: "It will be removed for everyone in this conversation.",
        confirmLabel: "Delete",
        danger: true,
      },
      options.dialogHost,
    );
    if (!confirmed) return;
    const failure = await chat.remove(m.id);
    if (failure) options.toast(failure.text);
  }

  async function submit(): Promise<void> {
    if (busy) return;
    const text = textarea.value.trim();
    const length = textLength(text);
    if (length === 0 || length > MAX_TEXT_LENGTH) return;
    if (editing) {
      if (text === editing.original) {
        cancelEdit(true);
        return;
      }
      busy = true;
      updateComposer();
      const failure = await chat.edit(editing.id, text);
      busy = false;
      if (failure) options.toast(failure.text);
      else cancelEdit(true);
      updateComposer();
      return;
    }
    chat.send(roomId, text);
    textarea.value = "";
    drafts.delete(roomId);
    updateComposer();
    forceBottom = true;
    schedule();
  }

  // -- sharing files ------------------------------------------------------------------------
  /** Upload files into this room; the composer's text becomes the first one's caption. */
  function shareFiles(files: File[]): void {
    if (files.length === 0) return;
    if (editing) cancelEdit(false);
    const text = textarea.value.trim();
    if (textLength(text) > MAX_TEXT_LENGTH) {
      options.toast("The caption is too long. Shorten the text first.");
      return;
    }
    files.forEach((file, index) => options.uploads.add(roomId, file, index === 0 ? text : ""));
    if (text) {
      textarea.value = "";
      drafts.delete(roomId);
      chat.stopTyping(roomId);
      updateComposer();
    }
    forceBottom = true;
    schedule();
  }

  fileInput.addEventListener("change", () => {
    shareFiles([...(fileInput.files ?? [])]);
    fileInput.value = "";
  });
  textarea.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (files.length === 0) return;
    event.preventDefault();
    shareFiles(files);
  });

  let dragDepth = 0;
  const carriesFiles = (event: DragEvent): boolean =>
    event.dataTransfer?.types.includes("Files") ?? false;
  function endDrag(): void {
    dragDepth = 0;
    dropZone.hidden = true;
  }
  element.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    dropZone.hidden = false;
  });
  element.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  element.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropZone.hidden = true;
  });
  element.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    endDrag();
    shareFiles([...(event.dataTransfer?.files ?? [])]);
  });
  // A file dropped next to the conversation must not replace the page.
  const guardDrop = (event: DragEvent): void => {
    if (carriesFiles(event) && !element.contains(event.target as Node)) event.preventDefault();
  };
  window.addEventListener("dragover", guardDrop);
  window.addEventListener("drop", guardDrop);
  window.addEventListener("dragend", endDrag);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void submit();
  });
  textarea.addEventListener("input", onInput);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void submit();
    } else if (event.key === "Escape" && editing) {
      event.preventDefault();
      cancelEdit(true);
    } else if (event.key === "ArrowUp" && !editing && textarea.value === "") {
      // Edit my last message, as in most chat apps.
      const entry = chat.get(roomId);
      const mine = entry
        ? models(entry).findLast((m) => m.own && m.state === "sent" && !m.deleted && m.text !== "")
        : undefined;
      if (mine) {
        event.preventDefault();
        startEdit(mine);
      }
    }
  });
  body.addEventListener("scroll", onScroll, { passive: true });

  const resize = new ResizeObserver(() => {
    if (stick) body.scrollTop = body.scrollHeight;
  });
  resize.observe(body);
  resize.observe(list);

  const onFocus = (): void => maybeRead();
  window.addEventListener("focus", onFocus);
  document.addEventListener("visibilitychange", onFocus);

  const offChat = chat.on("changed", ({ roomId: changed }) => {
    if (changed === roomId || changed === null) schedule();
  });
  const offUploads = options.uploads.on("changed", ({ roomId: changed }) => {
    if (changed === roomId) schedule();
  });

  // Start.
  textarea.value = drafts.get(roomId) ?? "";
  chat.activeRoomId = roomId;
  void chat.loadLatest(roomId);
  render();
  updateComposer();

  return {
    roomId,
    element,
    refresh: schedule,
    focusComposer() {
      textarea.focus();
    },
    focusTitle() {
      head.name.focus();
    },
    dispose() {
      offChat();
      offUploads();
      window.removeEventListener("dragover", guardDrop);
      window.removeEventListener("drop", guardDrop);
      window.removeEventListener("dragend", endDrag);
      for (const node of attachmentNodes.values()) {
        node.querySelector<HTMLMediaElement>("video, audio")?.pause();
      }
      resize.disconnect();
      window.removeEventListener("focus", onFocus);
      document.removeEventListener("visibilitychange", onFocus);
      chat.stopTyping(roomId);
      if (chat.activeRoomId === roomId) chat.activeRoomId = null;
    },
  };
}
