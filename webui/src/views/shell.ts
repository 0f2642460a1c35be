// The main screen after sign-in: top bar, the sidebar (Conversations, People) and the main area
// (a conversation, or a placeholder).

import { ApiError, NetworkError } from "../api.ts";
import { Calls } from "../calls.ts";
import { Chat } from "../chat.ts";
import { MediaLinks, Uploads } from "../media.ts";
import { People } from "../people.ts";
import { Recordings } from "../recordings.ts";
import { site } from "../setup.ts";
import type { ConnectionState, Session } from "../session.ts";
import { avatar } from "../ui/avatar.ts";
import { h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { toaster } from "../ui/toast.ts";
import { accountIcon, accountView } from "./account.ts";
import { adminView } from "./admin.ts";
import { callOverlay } from "./call.ts";
import {
  conversationView,
  openingConversation,
  type CallControls,
  type ConversationView,
} from "./conversation.ts";
import { newGroupDialog } from "./new-group.ts";
import { peoplePanel, statusText } from "./people-panel.ts";
import { recordingsView } from "./recordings.ts";
import { roomsPanel } from "./rooms-panel.ts";

export interface ShellOptions {
  onSignedOut: () => void;
}

const NARROW = window.matchMedia("(max-width: 719px)");

/** Views of the main area opened from the top bar (instead of a conversation). */
type PageName = "recordings" | "account" | "admin";

const PAGE_LABEL: Record<PageName, string> = {
  recordings: "Recordings",
  account: "Account",
  admin: "Administration",
};

interface PageView {
  element: HTMLElement;
  focusTitle(): void;
  dispose(): void;
}

const STATE_LABEL: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
};

export function renderShell(root: HTMLElement, session: Session, options: ShellOptions): () => void {
  const people = new People(session);
  const chat = new Chat(session);
  const uploads = new Uploads(session, chat);
  const links = new MediaLinks(session);
  const calls = new Calls(session);
  const recordings = new Recordings(session);
  const callControls: CallControls = {
    unavailable(userId) {
      if (calls.busy) return "You're in a call";
      const person = people.get(userId);
      if (!person?.online) return `${person?.username ?? "They"} is offline`;
      return null;
    },
    start(peer, video) {
      if (callControls.unavailable(peer.user_id) !== null) return;
      void calls.start(peer, { audio: true, video });
    },
  };

  // -- top bar ------------------------------------------------------------------------------
  const statusLabel = h("span", { class: "status-label" });
  const connection = h(
    "div",
    { class: "connection", role: "status", "data-testid": "connection-status" },
    h("span", { class: "connection-dot", "aria-hidden": "true" }),
    statusLabel,
  );
  function navButton(name: PageName, label: string, glyph: Element): HTMLButtonElement {
    return h(
      "button",
      {
        type: "button",
        class: `btn btn-ghost nav-button nav-${name}`,
        "data-testid": `nav-${name}`,
        "aria-pressed": "false",
        title: label,
        onclick: () => togglePage(name),
      },
      glyph,
      h("span", { class: "nav-label" }, label),
    );
  }
  const navButtons: Partial<Record<PageName, HTMLButtonElement>> = {
    recordings: navButton("recordings", "Recordings", icon("recordings")),
  };
  if (session.me.is_admin) navButtons.admin = navButton("admin", "Admin", icon("shield"));
  navButtons.account = navButton("account", "Account", accountIcon("account"));
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
      h("nav", { class: "topnav", "aria-label": "Pages" }, ...Object.values(navButtons)),
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
  const toasts = toaster();

  function emptyState(): HTMLElement {
    return h(
      "div",
      { class: "empty-state", "data-testid": "empty-state" },
      icon("chat", "illustration"),
      h("h2", { class: "empty-title" }, "Select a person to start a conversation"),
      h(
        "p",
        { class: "empty-text" },
        "Pick someone from People, open one of your conversations, or start a group.",
      ),
    );
  }

  // What the main area shows: a room, a direct room being opened, or nothing.
  let selectedRoom: number | null = null;
  let opening: { userId: number; error: string | null } | null = null;
  // Where the conversation was opened from, for focus when going back on narrow screens.
  let origin: { kind: "person"; userId: number } | { kind: "room"; roomId: number } | null = null;
  let current: ConversationView | null = null;
  let page: PageName | null = null;
  let pageView: { name: PageName; view: PageView } | null = null;

  function disposeCurrent(): void {
    current?.dispose();
    current = null;
  }

  function disposePage(): void {
    pageView?.view.dispose();
    pageView = null;
  }

  function makePage(name: PageName): PageView {
    const common = {
      onBack: () => back(),
      toast: (text: string) => toasts.show(text),
      dialogHost: app,
    };
    switch (name) {
      case "recordings":
        return recordingsView({
          recordings,
          recordingEnabled: () => calls.recordingEnabled,
          ...common,
        });
      case "account":
        return accountView({ session, ...common });
      case "admin":
        return adminView(session, common);
    }
  }

  function renderMain(): void {
    for (const [name, button] of Object.entries(navButtons)) {
      setAttr(button, "aria-pressed", page === name ? "true" : "false");
    }
    main.setAttribute("aria-label", page === null ? "Conversation" : PAGE_LABEL[page]);
    if (page !== null) {
      disposeCurrent();
      if (pageView?.name !== page) {
        disposePage();
        pageView = { name: page, view: makePage(page) };
        main.replaceChildren(pageView.view.element);
      }
      layout.dataset.view = "conversation";
      roomsList.setSelected(null);
      panel.setSelected(null);
      return;
    }
    disposePage();
    if (selectedRoom !== null) {
      if (current?.roomId !== selectedRoom) {
        disposeCurrent();
        current = conversationView({
          chat,
          people,
          uploads,
          links,
          calls: callControls,
          roomId: selectedRoom,
          onBack: () => back(),
          toast: (text) => toasts.show(text),
          dialogHost: app,
        });
        if (current) main.replaceChildren(current.element);
        else selectedRoom = null;
      } else {
        current.refresh();
      }
    } else {
      disposeCurrent();
    }
    if (selectedRoom === null) {
      if (opening) {
        const person = people.get(opening.userId);
        const userId = opening.userId;
        main.replaceChildren(
          openingConversation({
            username: person?.username ?? "…",
            online: person?.online ?? false,
            status: person ? statusText(person) : "",
            error: opening.error,
            onBack: () => back(),
            onRetry: () => void openPerson(userId),
          }),
        );
      } else {
        main.replaceChildren(emptyState());
      }
    }
    const showing = selectedRoom !== null || opening !== null;
    layout.dataset.view = showing ? "conversation" : "list";
    roomsList.setSelected(selectedRoom);
    const entry = selectedRoom !== null ? chat.get(selectedRoom) : undefined;
    const peer = entry ? chat.peer(entry) : null;
    panel.setSelected(peer?.user_id ?? opening?.userId ?? null);
  }

  function afterOpen(): void {
    // On narrow screens the list and the conversation replace each other: move focus along.
    if (NARROW.matches) current?.focusTitle();
    else current?.focusComposer();
  }

  function selectRoom(roomId: number): void {
    page = null;
    opening = null;
    selectedRoom = roomId;
    renderMain();
    afterOpen();
  }

  async function openPerson(userId: number): Promise<void> {
    origin = { kind: "person", userId };
    const known = chat.directWith(userId);
    if (known) {
      selectRoom(known.room.id);
      return;
    }
    selectedRoom = null;
    page = null;
    opening = { userId, error: null };
    renderMain();
    if (NARROW.matches) main.querySelector<HTMLElement>(".conversation-name")?.focus();
    try {
      const entry = await chat.openDirect(userId);
      if (opening?.userId !== userId) return; // went elsewhere meanwhile
      selectRoom(entry.room.id);
    } catch (error) {
      if (opening?.userId !== userId) return;
      if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
      opening = {
        userId,
        error:
          error instanceof NetworkError
            ? "Can't reach the appliance right now."
            : error instanceof ApiError && error.code === "rate_limited"
              ? `Slow down — try again in ${Math.max(1, error.retryAfter ?? 1)}s`
              : "The conversation could not be opened.",
      };
      renderMain();
    }
  }

  function back(): void {
    const fromPage = page;
    page = null;
    selectedRoom = null;
    opening = null;
    renderMain();
    if (fromPage !== null) {
      navButtons[fromPage]?.focus();
      return;
    }
    if (!NARROW.matches || origin === null) return;
    if (origin.kind === "person") panel.focus(origin.userId);
    else roomsList.focus(origin.roomId);
  }

  function togglePage(name: PageName): void {
    if (page === name) {
      back();
      return;
    }
    page = name;
    selectedRoom = null;
    opening = null;
    renderMain();
    pageView?.view.focusTitle();
  }

  async function startGroup(): Promise<void> {
    const entry = await newGroupDialog(chat, people, app);
    if (entry) {
      origin = { kind: "room", roomId: entry.room.id };
      selectRoom(entry.room.id);
    }
  }

  const panel = peoplePanel(people, (userId) => void openPerson(userId), {
    canCall: (userId) => callControls.unavailable(userId) === null,
    call: (person, video) =>
      callControls.start({ user_id: person.userId, username: person.username }, video),
  });
  const callView = callOverlay(calls);
  const roomsList = roomsPanel(chat, people, {
    onSelect: (roomId) => {
      origin = { kind: "room", roomId };
      selectRoom(roomId);
    },
    onNewGroup: () => void startGroup(),
  });
  const sidebar = h(
    "aside",
    { class: "sidebar", "data-testid": "sidebar", "aria-label": "Conversations and people" },
    roomsList.element,
    panel.element,
  );
  const layout = h("div", { class: "layout", "data-view": "list" }, sidebar, main);
  const app = h(
    "div",
    { class: "app", "data-testid": "app-shell" },
    topbar,
    layout,
    toasts.element,
    ...callView.elements,
  );

  // -- live state ---------------------------------------------------------------------------
  function showState(state: ConnectionState): void {
    setAttr(connection, "data-state", state);
    setText(statusLabel, STATE_LABEL[state]);
    setAttr(connection, "title", STATE_LABEL[state]);
    setAttr(layout, "data-connection", state);
  }

  function updateTitle(): void {
    const unread = chat.list().reduce((sum, entry) => sum + entry.unread, 0);
    const title = unread > 0 ? `(${unread > 99 ? "99+" : unread}) Appliance` : "Appliance";
    if (document.title !== title) document.title = title;
  }

  const offState = session.on("state", (state) => {
    showState(state);
    current?.refresh(); // pending messages say "waiting for the connection"
  });
  const offPeople = people.on("changed", () => {
    if (selectedRoom !== null || opening !== null) renderMain();
  });
  const offChat = chat.on("changed", ({ roomId }) => {
    if (roomId === null) updateTitle();
  });
  const offRemoved = chat.on("removed", ({ roomId, title }) => {
    if (roomId !== selectedRoom) return;
    toasts.show(`“${title}” is no longer available to you.`);
    back();
  });
  const offNotice = chat.on("notice", ({ text }) => toasts.show(text));
  const offCallNotice = calls.on("notice", ({ text }) => toasts.show(text));
  const offRecordingReady = recordings.on("ready", ({ recording }) => {
    const peer = recording ? recordings.peerOf(recording).username : null;
    toasts.show(
      peer
        ? `The recording of your call with ${peer} is ready in Recordings.`
        : "A call recording is ready in Recordings.",
    );
  });
  let wasBusy = false;
  const offCalls = calls.on("changed", () => {
    if (calls.busy === wasBusy) return;
    wasBusy = calls.busy; // call buttons are enabled again, or not
    panel.tick();
    current?.refresh();
  });
  const ticker = window.setInterval(() => {
    panel.tick();
    roomsList.render();
    if (selectedRoom !== null || opening !== null) renderMain();
  }, 30_000);
  // Whether calls may be recorded here: the call screen hides its record button if not.
  void site()
    .then((info) => {
      if (typeof info.recording_enabled === "boolean") calls.recordingEnabled = info.recording_enabled;
    })
    .catch(() => undefined); // not known: the button stays, and the server's answer says why

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
  void chat.reloadRooms();

  return () => {
    window.clearInterval(ticker);
    offState();
    offPeople();
    offChat();
    offRemoved();
    offNotice();
    offCallNotice();
    offRecordingReady();
    offCalls();
    callView.dispose();
    calls.dispose();
    disposePage();
    recordings.dispose();
    uploads.dispose();
    disposeCurrent();
    panel.dispose();
    roomsList.dispose();
    toasts.dispose();
    people.dispose();
    // The session is over (signed out here, or ended elsewhere): unsent messages go with it.
    chat.dispose(true);
  };
}
