// The "Conversations" list: my rooms, most recent first, with the last message, its time and
// an unread badge; live from the Chat store.

import type { Chat, RoomEntry } from "../chat.ts";
import { attachmentSummary } from "../media.ts";
import type { People } from "../people.ts";
import { avatar, groupAvatar } from "../ui/avatar.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { fullTime, listTime } from "../ui/time.ts";

interface Row {
  item: HTMLLIElement;
  button: HTMLButtonElement;
  title: string;
  avatarWrap: HTMLElement;
  dot: HTMLElement | null;
  name: HTMLElement;
  time: HTMLTimeElement;
  preview: HTMLElement;
  badge: HTMLElement;
  badgeCount: HTMLElement;
}

export interface RoomsPanel {
  element: HTMLElement;
  render(): void;
  setSelected(roomId: number | null): void;
  focus(roomId: number): void;
  dispose(): void;
}

export function typingText(names: string[], group: boolean): string {
  if (names.length === 0) return "";
  if (!group) return "typing…";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

/** One line of preview text. */
function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

export function roomsPanel(
  chat: Chat,
  people: People,
  handlers: { onSelect: (roomId: number) => void; onNewGroup: () => void },
): RoomsPanel {
  const rows = new Map<number, Row>();
  let selected: number | null = null;
  let scheduled = false;

  const newGroup = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-sm new-group",
      "data-testid": "new-group",
      title: "New group",
      onclick: () => handlers.onNewGroup(),
    },
    icon("plus"),
    h("span", {}, "New group"),
  );
  const list = h("ul", { class: "room-list", "data-testid": "room-list", role: "list" });
  const message = h("div", { class: "people-message", "data-testid": "rooms-message" });
  const element = h(
    "section",
    { class: "sidebar-section", "aria-labelledby": "rooms-heading", "data-testid": "rooms" },
    h(
      "div",
      { class: "sidebar-head" },
      h("h2", { id: "rooms-heading", class: "sidebar-title" }, "Conversations"),
      newGroup,
    ),
    list,
    message,
  );

  function makeRow(entry: RoomEntry): Row {
    const title = chat.title(entry);
    const peer = chat.peer(entry);
    const dot = peer ? h("span", { class: "presence-dot", "data-testid": "presence-dot" }) : null;
    const avatarWrap = h(
      "span",
      { class: "avatar-wrap" },
      peer ? avatar(title) : groupAvatar(title),
      dot,
    );
    const name = h("span", { class: "room-name", "data-testid": "room-name" }, title);
    const time = h("time", { class: "room-time", "data-testid": "room-time" });
    const preview = h("span", { class: "room-preview", "data-testid": "room-preview" });
    const badgeCount = h("span", { "data-testid": "room-unread" });
    const badge = h(
      "span",
      { class: "unread-badge" },
      badgeCount,
      h("span", { class: "visually-hidden" }, " unread"),
    );
    const button = h(
      "button",
      {
        type: "button",
        class: "room-row",
        "data-testid": "room",
        "data-room-id": entry.room.id,
        "data-kind": entry.room.kind,
      },
      avatarWrap,
      h(
        "span",
        { class: "room-text" },
        h("span", { class: "room-line" }, name, time),
        h("span", { class: "room-line" }, preview, badge),
      ),
    );
    button.addEventListener("click", () => handlers.onSelect(entry.room.id));
    const item = h("li", { class: "room-item" }, button);
    return { item, button, title, avatarWrap, dot, name, time, preview, badge, badgeCount };
  }

  function previewOf(entry: RoomEntry): { text: string; kind: string } {
    const group = entry.room.kind === "group";
    const typing = typingText(chat.typingNames(entry.room.id), group);
    if (typing) return { text: typing, kind: "typing" };
    const pending = chat.pending(entry.room.id).at(-1);
    if (pending) {
      // Not sent yet, so newer than anything the server has.
      const failed = pending.state === "failed";
      return {
        text: `${failed ? "Not sent" : "You"}: ${oneLine(pending.text)}`,
        kind: failed ? "failed" : "",
      };
    }
    const last = entry.last;
    if (!last) return { text: "No messages yet", kind: "empty" };
    const own = last.sender.user_id === chat.me;
    const who = own ? "You: " : group ? `${last.sender.username}: ` : "";
    if (last.deleted) return { text: `${who}Message deleted`, kind: "deleted" };
    if (last.attachment) {
      return { text: who + oneLine(attachmentSummary(last.attachment, last.text)), kind: "" };
    }
    return { text: who + oneLine(last.text), kind: "" };
  }

  function updateRow(row: Row, entry: RoomEntry): void {
    const title = chat.title(entry);
    if (title !== row.title) {
      row.title = title;
      setText(row.name, title);
      row.avatarWrap.firstElementChild?.replaceWith(
        entry.room.kind === "direct" ? avatar(title) : groupAvatar(title),
      );
    }
    const peer = chat.peer(entry);
    const presence = peer && people.get(peer.user_id)?.online ? "online" : "offline";
    if (row.dot) setAttr(row.dot, "data-presence", presence);
    const at = chat.activity(entry);
    setText(row.time, listTime(at));
    setAttr(row.time, "datetime", new Date(at * 1000).toISOString());
    setAttr(row.time, "title", fullTime(at));
    const preview = previewOf(entry);
    setText(row.preview, preview.text);
    setAttr(row.preview, "data-kind", preview.kind || null);
    const unread = entry.unread;
    setText(row.badgeCount, unread > 99 ? "99+" : String(unread));
    row.badge.hidden = unread === 0;
    setAttr(row.button, "data-unread", String(unread));
    setAttr(row.button, "data-room-name", title);
    setAttr(row.button, "aria-current", entry.room.id === selected ? "true" : null);
  }

  function render(): void {
    scheduled = false;
    const entries = chat.list();
    const wanted = new Set(entries.map((e) => e.room.id));
    for (const [id, row] of rows) {
      if (!wanted.has(id)) {
        row.item.remove();
        rows.delete(id);
      }
    }
    entries.forEach((entry, index) => {
      let row = rows.get(entry.room.id);
      if (!row) {
        row = makeRow(entry);
        rows.set(entry.room.id, row);
      }
      updateRow(row, entry);
      if (list.children[index] !== row.item) {
        list.insertBefore(row.item, list.children[index] ?? null);
      }
    });

    const status = chat.status;
    setAttr(element, "aria-busy", status.kind === "loading" ? "true" : null);
    if (status.kind === "error" && entries.length === 0) {
      message.replaceChildren(
        h("p", {}, status.message),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-secondary btn-sm",
            "data-testid": "rooms-retry",
            onclick: () => void chat.reloadRooms(),
          },
          "Try again",
        ),
      );
    } else if (status.kind === "loading" && entries.length === 0) {
      message.replaceChildren(
        ...[0, 1].map(() =>
          h(
            "div",
            { class: "skeleton-row", "aria-hidden": "true" },
            h("span", { class: "skeleton skeleton-avatar" }),
            h("span", { class: "skeleton skeleton-line" }),
          ),
        ),
        h("span", { class: "visually-hidden" }, "Loading conversations…"),
      );
    } else if (entries.length === 0) {
      message.replaceChildren(
        h(
          "div",
          { class: "rooms-empty", "data-testid": "rooms-empty" },
          h("p", { class: "people-empty-title" }, "No conversations yet"),
          h("p", {}, "Pick someone from People to send a message, or start a group."),
        ),
      );
    } else {
      message.replaceChildren();
    }
    message.hidden = message.childElementCount === 0;
  }

  /** Coalesce bursts of changes (a catch-up of many messages) into one render. */
  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(render);
  }

  const offChat = chat.on("changed", schedule);
  const offPeople = people.on("changed", schedule);
  render();

  return {
    element,
    render,
    setSelected(roomId) {
      selected = roomId;
      render();
    },
    focus(roomId) {
      rows.get(roomId)?.button.focus();
    },
    dispose() {
      offChat();
      offPeople();
    },
  };
}
