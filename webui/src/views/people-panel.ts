// The "People" part of the sidebar: everyone but me, with a live presence dot and "last seen".
// Clicking someone opens (creating on first use) the direct conversation with them.

import type { People, Person } from "../people.ts";
import { avatar } from "../ui/avatar.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { fullTime, lastSeenText } from "../ui/time.ts";

interface Row {
  item: HTMLLIElement;
  button: HTMLButtonElement;
  actions: HTMLElement | null;
  status: HTMLElement;
  dot: HTMLElement;
}

export interface PeoplePanel {
  element: HTMLElement;
  /** Re-render the relative times ("5 min ago"). */
  tick(): void;
  setSelected(userId: number | null): void;
  focus(userId: number): void;
  dispose(): void;
}

export function statusText(person: Person): string {
  return person.online ? "online" : lastSeenText(person.lastSeen);
}

export interface PersonCalls {
  canCall(userId: number): boolean;
  call(person: Person, video: boolean): void;
}

export function peoplePanel(
  people: People,
  onSelect: (userId: number) => void,
  calls: PersonCalls | null = null,
): PeoplePanel {
  const rows = new Map<number, Row>();
  let selected: number | null = null;

  const count = h("span", { class: "people-count", "data-testid": "people-count" });
  const list = h("ul", { class: "people-list", "data-testid": "people-list", role: "list" });
  const message = h("div", { class: "people-message", "data-testid": "people-message" });
  const element = h(
    "section",
    { class: "sidebar-section", "aria-labelledby": "people-heading", "data-testid": "people" },
    h(
      "div",
      { class: "sidebar-head" },
      h("h2", { id: "people-heading", class: "sidebar-title" }, "People"),
      count,
    ),
    list,
    message,
  );

  function makeRow(person: Person): Row {
    const dot = h("span", { class: "presence-dot", "data-testid": "presence-dot" });
    const status = h("span", { class: "person-status", "data-testid": "person-status" });
    const button = h(
      "button",
      {
        type: "button",
        class: "person",
        "data-testid": "person",
        "data-user-id": person.userId,
        "data-username": person.username,
      },
      h("span", { class: "avatar-wrap" }, avatar(person.username), dot),
      h(
        "span",
        { class: "person-text" },
        h("span", { class: "person-name" }, person.username),
        status,
      ),
    );
    button.addEventListener("click", () => onSelect(person.userId));
    const callButton = (video: boolean): HTMLButtonElement =>
      h(
        "button",
        {
          type: "button",
          class: "person-call",
          "data-testid": video ? "person-call-video" : "person-call-audio",
          "aria-label": `${video ? "Video call" : "Call"} ${person.username}`,
          title: video ? "Video call" : "Audio call",
          onclick: () => {
            const current = people.get(person.userId);
            if (current) calls?.call(current, video);
          },
        },
        icon(video ? "video" : "phone"),
      );
    const actions = calls
      ? h("div", { class: "person-calls" }, callButton(false), callButton(true))
      : null;
    const item = h("li", { class: "people-item" }, button, actions);
    return { item, button, actions, status, dot };
  }

  function updateRow(row: Row, person: Person): void {
    const presence = person.online ? "online" : "offline";
    const text = statusText(person);
    setAttr(row.button, "data-presence", presence);
    setAttr(row.button, "aria-label", `${person.username}, ${text}`);
    setAttr(row.button, "aria-current", person.userId === selected ? "true" : null);
    setAttr(row.dot, "data-presence", presence);
    if (row.actions) row.actions.hidden = !calls?.canCall(person.userId);
    setText(row.status, text);
    setAttr(
      row.status,
      "title",
      !person.online && person.lastSeen !== null ? fullTime(person.lastSeen) : null,
    );
  }

  function render(): void {
    const everyone = people.list();
    const status = people.status;
    const wanted = new Set(everyone.map((p) => p.userId));
    for (const [id, row] of rows) {
      if (!wanted.has(id)) {
        row.item.remove();
        rows.delete(id);
      }
    }
    everyone.forEach((person, index) => {
      let row = rows.get(person.userId);
      if (!row) {
        row = makeRow(person);
        rows.set(person.userId, row);
      }
      updateRow(row, person);
      // Move only what is out of place, so a focused row keeps its focus when nothing moves.
      if (list.children[index] !== row.item) list.insertBefore(row.item, list.children[index] ?? null);
    });

    const online = everyone.filter((p) => p.online).length;
    setText(count, everyone.length ? `${online} online` : "");
    setAttr(element, "aria-busy", status.kind === "loading" ? "true" : null);

    if (status.kind === "error") {
      message.replaceChildren(
        h("p", {}, status.message),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-secondary btn-sm",
            "data-testid": "people-retry",
            onclick: () => void people.reload(),
          },
          "Try again",
        ),
      );
    } else if (status.kind === "loading" && everyone.length === 0) {
      message.replaceChildren(
        ...[0, 1, 2].map(() =>
          h(
            "div",
            { class: "skeleton-row", "aria-hidden": "true" },
            h("span", { class: "skeleton skeleton-avatar" }),
            h("span", { class: "skeleton skeleton-line" }),
          ),
        ),
        h("span", { class: "visually-hidden" }, "Loading people…"),
      );
    } else if (everyone.length === 0) {
      message.replaceChildren(
        h("span", { class: "people-empty-icon" }, icon("users")),
        h("p", { class: "people-empty-title" }, "No one else is here yet"),
        h("p", {}, "When your administrator adds people, they will show up here."),
      );
    } else {
      message.replaceChildren();
    }
    message.hidden = message.childElementCount === 0;
  }

  const off = people.on("changed", render);
  render();

  return {
    element,
    tick: render,
    setSelected(userId) {
      selected = userId;
      render();
    },
    focus(userId) {
      rows.get(userId)?.button.focus();
    },
    dispose: off,
  };
}
