// The main screen after sign-in: top bar, the People sidebar and the main area.

import { People } from "../people.ts";
import type { ConnectionState, Session } from "../session.ts";
import { avatar } from "../ui/avatar.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { peoplePanel, statusText } from "./people-panel.ts";

export interface ShellOptions {
  onSignedOut: () => void;
}

const NARROW = window.matchMedia("(max-width: 719px)");

const STATE_LABEL: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
};

export function renderShell(root: HTMLElement, session: Session, options: ShellOptions): () => void {
  const people = new People(session);
  let selected: number | null = null;

  // -- top bar ------------------------------------------------------------------------------
  const statusLabel = h("span", { class: "status-label" });
  const connection = h(
    "div",
    { class: "connection", role: "status", "data-testid": "connection-status" },
    h("span", { class: "connection-dot", "aria-hidden": "true" }),
    statusLabel,
  );
  const signOutLabel = h("span", { class: "sign-out-label" }, "Sign out");
  const signOut = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost sign-out",
      "data-testid": "sign-out",
      title: "Sign out",
    },
    icon("signOut"),
    signOutLabel,
  );
  const me = session.me;
  const topbar = h(
    "header",
    { class: "topbar", "data-testid": "topbar" },
    h(
      "div",
      { class: "brand" },
      icon("logo", "logo"),
      h("span", { class: "brand-name" }, "Appliance"),
    ),
    h(
      "div",
      { class: "topbar-end" },
      connection,
      h(
        "div",
        { class: "me", "data-testid": "current-user", title: `Signed in as ${me.username}` },
        avatar(me.username, "sm"),
        h("span", { class: "me-name", "data-testid": "current-username" }, me.username),
        me.is_admin ? h("span", { class: "badge" }, "Admin") : null,
      ),
      signOut,
    ),
  );

  // -- main area ----------------------------------------------------------------------------
  const main = h("main", { class: "main", "data-testid": "main", "aria-label": "Conversation" });

  function emptyState(): HTMLElement {
    return h(
      "div",
      { class: "empty-state", "data-testid": "empty-state" },
      icon("chat", "illustration"),
      h("h2", { class: "empty-title" }, "Select a person to start a conversation"),
      h("p", { class: "empty-text" }, "Pick someone from People to see if they're around."),
    );
  }

  interface ConversationView {
    userId: number;
    element: HTMLElement;
    update(): boolean;
  }
  let current: ConversationView | null = null;

  function conversationView(userId: number): ConversationView | null {
    const person = people.get(userId);
    if (!person) return null;
    const back = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon back",
        "aria-label": "Back to people",
        "data-testid": "back-to-people",
        onclick: () => select(null),
      },
      icon("back"),
    );
    const dot = h("span", { class: "presence-dot" });
    const status = h("span", { class: "person-status", "data-testid": "conversation-status" });
    const element = h(
      "section",
      {
        class: "conversation",
        "data-testid": "conversation",
        "data-username": person.username,
        "aria-label": `Conversation with ${person.username}`,
      },
      h(
        "header",
        { class: "conversation-head" },
        back,
        h("span", { class: "avatar-wrap" }, avatar(person.username), dot),
        h(
          "div",
          { class: "person-text" },
          h("h2", { class: "conversation-name", tabindex: -1 }, person.username),
          status,
        ),
      ),
      h(
        "div",
        { class: "conversation-body" },
        h(
          "div",
          { class: "empty-state" },
          avatar(person.username, "lg"),
          h(
            "h3",
            { class: "empty-title" },
            `This is the start of your conversation with ${person.username}`,
          ),
          h("p", { class: "empty-text" }, "Messages will appear here."),
        ),
      ),
    );
    const update = (): boolean => {
      const now = people.get(userId);
      if (!now) return false;
      setAttr(dot, "data-presence", now.online ? "online" : "offline");
      setAttr(element, "data-presence", now.online ? "online" : "offline");
      setText(status, statusText(now));
      return true;
    };
    update();
    return { userId, element, update };
  }

  function renderMain(): void {
    if (selected !== null && current?.userId === selected && current.update()) return;
    current = selected === null ? null : conversationView(selected);
    if (current === null) selected = null;
    main.replaceChildren(current?.element ?? emptyState());
    layout.dataset.view = current ? "conversation" : "list";
  }

  function select(userId: number | null): void {
    const previous = selected;
    selected = userId;
    panel.setSelected(userId);
    renderMain();
    // On narrow screens the list and the conversation replace each other: move focus along.
    if (!NARROW.matches) return;
    if (current) current.element.querySelector<HTMLElement>(".conversation-name")?.focus();
    else if (previous !== null) panel.focus(previous);
  }

  const panel = peoplePanel(people, (userId) => select(userId));
  const layout = h("div", { class: "layout", "data-view": "list" }, panel.element, main);
  const app = h("div", { class: "app", "data-testid": "app-shell" }, topbar, layout);

  // -- live state ---------------------------------------------------------------------------
  function showState(state: ConnectionState): void {
    setAttr(connection, "data-state", state);
    setText(statusLabel, STATE_LABEL[state]);
    setAttr(connection, "title", STATE_LABEL[state]);
    setAttr(layout, "data-connection", state);
  }

  const offState = session.on("state", showState);
  const offPeople = people.on("changed", () => {
    if (selected !== null) renderMain();
  });
  const ticker = window.setInterval(() => {
    panel.tick();
    if (selected !== null) renderMain();
  }, 30_000);

  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    signOutLabel.textContent = "Signing out…";
    await session.signOut();
    options.onSignedOut();
  });

  showState(session.connectionState);
  renderMain();
  root.replaceChildren(app);
  void people.reload();

  return () => {
    window.clearInterval(ticker);
    offState();
    offPeople();
    panel.dispose();
    people.dispose();
  };
}
