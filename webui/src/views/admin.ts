// The admin page (main area, admins only): People (accounts: add, disable/enable, reset a
// password, make/remove admin, delete), Invitations (links to join, shown once; revoke) and
// Health (the doctor's checks with a verdict and what to do). Tables turn into stacked cards on
// narrow screens (admin.css).

import "../admin.css";
import * as admin from "../admin.ts";
import type {
  AdminUser,
  CheckStatus,
  DoctorReport,
  Invitation,
  InvitationState,
} from "../admin.ts";
import { ApiError, NetworkError, serverNow } from "../api.ts";
import type { Session } from "../session.ts";
import { site } from "../setup.ts";
import { avatar } from "../ui/avatar.ts";
import { closeOnBackdrop, confirmDialog, openModal, uid } from "../ui/dialog.ts";
import { fromMarkup, h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { clockTime, fullTime, lastSeenText } from "../ui/time.ts";
import { toaster } from "../ui/toast.ts";

export interface AdminViewOptions {
  /** Shows a back button (narrow screens) that calls this. */
  onBack?: () => void;
  /** The shell's notices; the view makes its own when not given. */
  toast?: (text: string) => void;
  /** Where dialogs go (the app element); document.body when not given. */
  dialogHost?: HTMLElement;
}

export interface AdminView {
  element: HTMLElement;
  focusTitle(): void;
  dispose(): void;
}

type TabName = "people" | "invitations" | "health";

const TABS: Array<{ name: TabName; label: string }> = [
  { name: "people", label: "People" },
  { name: "invitations", label: "Invitations" },
  { name: "health", label: "Health" },
];

const TAB_KEY = "appliance.admin.tab";
const REFRESH_MS = 30_000;
const DEFAULT_MIN_PASSWORD = 8;

// Icons this page needs beyond the shared set (trusted constants, never data).
const svg = (body: string, size = 18): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 24 24" ` +
  `fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ` +
  `stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;
const LOCAL_ICONS = {
  more: svg(
    `<circle cx="5" cy="12" r="1.6" fill="currentColor" stroke="none"/>` +
      `<circle cx="12" cy="12" r="1.6" fill="currentColor" stroke="none"/>` +
      `<circle cx="19" cy="12" r="1.6" fill="currentColor" stroke="none"/>`,
  ),
  key: svg(
    `<circle cx="7.5" cy="15.5" r="4.5"/><path d="m10.7 12.3 9.8-9.8"/><path d="m17 6 3 3"/>` +
      `<path d="m14.5 8.5 2.5 2.5"/>`,
    16,
  ),
  userPlus: svg(
    `<path d="M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>` +
      `<path d="M19 8v6"/><path d="M22 11h-6"/>`,
  ),
  link: svg(
    `<path d="M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71"/>` +
      `<path d="M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71"/>`,
  ),
  pulse: svg(`<path d="M22 12h-4l-3 9L9 3l-3 9H2"/>`),
  shieldOff: svg(
    `<path d="M19.7 14a6.9 6.9 0 0 0 .3-2V5l-8-3-3.2 1.2"/><path d="m2 2 20 20"/>` +
      `<path d="M4.7 4.7 4 5v7c0 6 8 10 8 10a20.3 20.3 0 0 0 5.6-4.4"/>`,
    16,
  ),
  shield: svg(`<path d="M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z"/>`, 16),
  userCheck: svg(
    `<path d="M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2"/><circle cx="9" cy="7" r="4"/>` +
      `<path d="m16 11 2 2 4-4"/>`,
    16,
  ),
  ban: svg(`<circle cx="12" cy="12" r="9"/><path d="m5.7 5.7 12.6 12.6"/>`, 16),
  trash: svg(
    `<path d="M3 6h18"/><path d="M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6"/>` +
      `<path d="M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2"/>`,
    16,
  ),
  share: svg(
    `<circle cx="18" cy="5" r="3"/><circle cx="6" cy="12" r="3"/><circle cx="18" cy="19" r="3"/>` +
      `<path d="m8.6 13.5 6.8 4"/><path d="m15.4 6.5-6.8 4"/>`,
    16,
  ),
  search: svg(`<circle cx="11" cy="11" r="7"/><path d="m21 21-4.3-4.3"/>`, 16),
  okCircle: svg(`<circle cx="12" cy="12" r="10"/><path d="m8 12.5 2.7 2.7L16 10"/>`, 26),
  warnTriangle: svg(
    `<path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/>` +
      `<path d="M12 9v4"/><path d="M12 17h.01"/>`,
    26,
  ),
  failCircle: svg(`<circle cx="12" cy="12" r="10"/><path d="m15 9-6 6"/><path d="m9 9 6 6"/>`, 26),
} as const;

function localIcon(name: keyof typeof LOCAL_ICONS, className = "icon"): Element {
  const el = fromMarkup(LOCAL_ICONS[name]);
  el.setAttribute("class", className);
  return el;
}

// -- wording -------------------------------------------------------------------------------------

function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return trimmed;
  const first = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** "in 6 days", "in 3 h", "2 h ago", "just now". */
function relative(unixSeconds: number, nowMs = serverNow()): string {
  const diff = unixSeconds - nowMs / 1000;
  const ago = diff < 0;
  const s = Math.abs(diff);
  if (s < 60) return ago ? "just now" : "in under a minute";
  // Rounded, so that a fresh 7-day link says "in 7 days", not "in 6 days".
  const minutes = Math.round(s / 60);
  const hours = Math.round(s / 3600);
  const text =
    minutes < 60
      ? `${minutes} min`
      : hours < 24
        ? `${hours} h`
        : plural(Math.round(s / 86_400), "day");
  return ago ? `${text} ago` : `in ${text}`;
}

/** "3 Dec 2026" style, for tooltips and creation dates. */
function shortDate(unixSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  const sameYear = date.getFullYear() === new Date(serverNow()).getFullYear();
  return date.toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}

/** Why an admin action failed, in words an admin can act on. */
function failureText(error: unknown, fallback: string): string {
  if (error instanceof NetworkError) return "Can't reach the appliance right now. Try again.";
  if (!(error instanceof ApiError)) return fallback;
  switch (error.code) {
    case "rate_limited":
      return `Slow down — try again in ${Math.max(1, error.retryAfter ?? 1)}s.`;
    case "forbidden":
      return "Only admins can do this, and your account is no longer an admin.";
    case "weak_password": {
      // The policy's messages start with "password ...": "The password must be at least 8 …".
      const message = error.message.trim();
      return sentence(/^password\b/i.test(message) ? `the ${message}` : message);
    }
    case "invalid_request":
    case "conflict":
    case "last_admin":
      return sentence(error.message);
    default:
      return error.message ? `${fallback} (${sentence(error.message)})` : fallback;
  }
}

/** A random, readable temporary password: "kp7m-xq4t-9zrw" (about 59 bits). */
export function generatePassword(): string {
  const alphabet = "abcdefghjkmnpqrstuvwxyz23456789";
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  const chars = Array.from(bytes, (b) => alphabet[b % alphabet.length]);
  return [0, 4, 8].map((i) => chars.slice(i, i + 4).join("")).join("-");
}

let minPasswordLength: Promise<number> | null = null;

/** The password policy's minimum length (if the server tells, else the default). */
function passwordMinLength(): Promise<number> {
  minPasswordLength ??= site()
    .then((info) => {
      const value = (info as { password_min_length?: unknown }).password_min_length;
      return typeof value === "number" && value > 0 ? value : DEFAULT_MIN_PASSWORD;
    })
    .catch(() => DEFAULT_MIN_PASSWORD);
  return minPasswordLength;
}

function passwordRule(min: number): string {
  return `At least ${min} characters, not the username, and not a commonly used password.`;
}

/** Explicit table roles: the stacked-card layout (display: grid/flex) would drop them. */
function tableRoles(table: HTMLTableElement): void {
  setAttr(table, "role", "table");
  for (const group of table.querySelectorAll("thead, tbody")) setAttr(group, "role", "rowgroup");
  for (const row of table.querySelectorAll("tr")) setAttr(row, "role", "row");
  for (const cell of table.querySelectorAll("th")) setAttr(cell, "role", "columnheader");
  for (const cell of table.querySelectorAll("td")) setAttr(cell, "role", "cell");
}

// -- small building blocks -----------------------------------------------------------------------

function pill(text: string, tone: string, testId?: string): HTMLElement {
  return h("span", { class: `admin-pill admin-pill-${tone}`, "data-testid": testId }, text);
}

function alertBox(testId: string): { element: HTMLElement; show(text: string | null): void } {
  const text = h("span", { class: "alert-text" });
  const element = h(
    "div",
    { class: "alert alert-error", role: "alert", "data-testid": testId, hidden: true },
    h("span", { class: "alert-icon" }, icon("alert")),
    text,
  );
  return {
    element,
    show(message) {
      element.hidden = message === null;
      setText(text, message ?? "");
    },
  };
}

function busyButton(label: string, attrs: Record<string, string>): HTMLButtonElement {
  return h(
    "button",
    { type: "submit", class: "btn btn-primary", ...attrs },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    h("span", {}, label),
  );
}

function modalHead(titleId: string, title: string, close: () => void): HTMLElement {
  return h(
    "div",
    { class: "modal-head" },
    h("h2", { class: "modal-title", id: titleId }, title),
    h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon btn-icon-sm",
        "aria-label": "Close",
        onclick: close,
      },
      icon("close"),
    ),
  );
}

/** A text field for a temporary password with a "Generate" button and the policy under it. */
function passwordField(
  label: string,
  testId: string,
): { element: HTMLElement; input: HTMLInputElement } {
  const id = uid("admin-password");
  const hintId = uid("admin-password-hint");
  const input = h("input", {
    id,
    class: "input mono",
    type: "text",
    autocomplete: "off",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
    maxlength: 1024,
    "aria-describedby": hintId,
    "data-testid": testId,
  });
  const hint = h("p", { id: hintId, class: "admin-hint" }, passwordRule(DEFAULT_MIN_PASSWORD));
  void passwordMinLength().then((min) => setText(hint, passwordRule(min)));
  const generate = h(
    "button",
    {
      type: "button",
      class: "btn btn-secondary admin-generate",
      "data-testid": `${testId}-generate`,
      onclick: () => {
        input.value = generatePassword();
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.focus();
        input.select();
      },
    },
    "Generate",
  );
  const element = h(
    "div",
    { class: "field" },
    h("label", { class: "label", for: id }, label),
    h("div", { class: "admin-input-row" }, input, generate),
    hint,
  );
  return { element, input };
}

function checkboxChoice(
  title: string,
  text: string,
  testId: string,
  checked: boolean,
): { element: HTMLElement; input: HTMLInputElement } {
  const input = h("input", { type: "checkbox", "data-testid": testId, checked });
  const element = h(
    "label",
    { class: "choice admin-choice" },
    input,
    h(
      "span",
      { class: "choice-body" },
      h("span", { class: "choice-title" }, title),
      h("span", { class: "choice-text" }, text),
    ),
  );
  return { element, input };
}

/** A form dialog: fields, an error line, Cancel + a busy-able submit button. */
function formDialog(options: {
  title: string;
  intro?: string;
  testId: string;
  submitLabel: string;
  submitTestId: string;
  danger?: boolean;
  fields: HTMLElement[];
  host: HTMLElement;
  submit: () => Promise<string | null>;
  valid: () => boolean;
}): Promise<boolean> {
  const titleId = uid("admin-dialog-title");
  const error = alertBox(`${options.testId}-error`);
  let done = false;
  let busy = false;
  const submit = busyButton(options.submitLabel, { "data-testid": options.submitTestId });
  if (options.danger) submit.className = "btn btn-danger";
  const cancel = h("button", { type: "button", class: "btn btn-secondary" }, "Cancel");
  const form = h(
    "form",
    { class: "modal-form", novalidate: true },
    modalHead(titleId, options.title, () => dialog.close()),
    options.intro ? h("p", { class: "admin-dialog-intro" }, options.intro) : null,
    ...options.fields,
    error.element,
    h("div", { class: "modal-actions" }, cancel, submit),
  );
  const dialog = h(
    "dialog",
    { class: "modal admin-modal", "aria-labelledby": titleId, "data-testid": options.testId },
    form,
  );
  const update = (): void => {
    submit.disabled = busy || !options.valid();
  };
  form.addEventListener("input", () => {
    error.show(null);
    update();
  });
  cancel.addEventListener("click", () => dialog.close());
  closeOnBackdrop(dialog);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submit.disabled) return;
    busy = true;
    submit.classList.add("is-busy");
    update();
    try {
      const problem = await options.submit();
      if (problem === null) {
        done = true;
        dialog.close();
      } else {
        error.show(problem);
      }
    } finally {
      busy = false;
      submit.classList.remove("is-busy");
      update();
    }
  });
  update();
  const closed = openModal(dialog, options.host);
  form.querySelector<HTMLInputElement>("input:not([type=checkbox]), select")?.focus();
  return closed.then(() => done);
}

// -- the row actions menu (one popover, positioned next to its button) ---------------------------

interface MenuItem {
  label: string;
  icon: keyof typeof LOCAL_ICONS;
  testId: string;
  danger?: boolean;
  disabled?: boolean;
  run: () => void;
}

function actionsMenu(): {
  element: HTMLElement;
  open(anchor: HTMLElement, items: MenuItem[], note: string | null): void;
  close(): void;
  dispose(): void;
  readonly isOpen: boolean;
  /** Whether it is open for this button. */
  openFor(target: HTMLElement): boolean;
  onClosed: (() => void) | null;
} {
  const element = h("div", {
    class: "admin-menu",
    popover: "auto",
    role: "menu",
    "data-testid": "admin-menu",
  });
  let anchor: HTMLElement | null = null;
  let isOpen = false;

  function place(): void {
    if (!anchor) return;
    const box = anchor.getBoundingClientRect();
    const width = element.offsetWidth;
    const height = element.offsetHeight;
    const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
    let top = box.bottom + 4;
    if (top + height > window.innerHeight - 8) top = Math.max(8, box.top - height - 4);
    element.style.left = `${left}px`;
    element.style.top = `${top}px`;
  }

  function items(): HTMLButtonElement[] {
    return [...element.querySelectorAll<HTMLButtonElement>("button:not(:disabled)")];
  }

  element.addEventListener("toggle", (event) => {
    const open = (event as ToggleEvent).newState === "open";
    isOpen = open;
    if (anchor) setAttr(anchor, "aria-expanded", open ? "true" : "false");
    if (!open) {
      const from = anchor;
      anchor = null;
      // Back to the button unless focus moved elsewhere on purpose (a dialog).
      if (
        from &&
        (document.activeElement === document.body || element.contains(document.activeElement))
      ) {
        from.focus();
      }
      menu.onClosed?.();
    }
  });
  element.addEventListener("keydown", (event) => {
    const list = items();
    const at = list.indexOf(document.activeElement as HTMLButtonElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      list[(at + step + list.length) % list.length]?.focus();
    } else if (event.key === "Home") {
      event.preventDefault();
      list[0]?.focus();
    } else if (event.key === "End") {
      event.preventDefault();
      list[list.length - 1]?.focus();
    } else if (event.key === "Tab") {
      menu.close();
    }
  });
  const onResize = (): void => menu.close();
  window.addEventListener("resize", onResize);

  const menu = {
    element,
    onClosed: null as (() => void) | null,
    get isOpen() {
      return isOpen || element.matches(":popover-open");
    },
    openFor(target: HTMLElement) {
      return anchor === target && element.matches(":popover-open");
    },
    open(target: HTMLElement, entries: MenuItem[], note: string | null) {
      if (element.matches(":popover-open")) element.hidePopover();
      anchor = target;
      element.replaceChildren();
      entries.forEach((item, index) => {
        const previous = entries[index - 1];
        if (item.danger && previous && !previous.danger) {
          element.append(h("div", { class: "admin-menu-sep", role: "separator" }));
        }
        element.append(
          h(
            "button",
            {
              type: "button",
              role: "menuitem",
              class: `admin-menu-item${item.danger ? " is-danger" : ""}`,
              "data-testid": item.testId,
              disabled: item.disabled === true,
              onclick: () => {
                anchor = null; // the action decides where focus goes
                setAttr(target, "aria-expanded", "false");
                element.hidePopover();
                item.run();
              },
            },
            localIcon(item.icon),
            h("span", {}, item.label),
          ),
        );
      });
      if (note) {
        element.append(
          h("p", { class: "admin-menu-note", "data-testid": "admin-menu-note" }, note),
        );
      }
      element.showPopover();
      place();
      items()[0]?.focus();
    },
    close() {
      if (element.matches(":popover-open")) element.hidePopover();
    },
    dispose() {
      menu.close();
      window.removeEventListener("resize", onResize);
    },
  };
  return menu;
}

// -- the view -------------------------------------------------------------------------------------

export function adminView(session: Session, options: AdminViewOptions = {}): AdminView {
  const host = options.dialogHost ?? document.body;
  const ownToasts = options.toast ? null : toaster();
  const toast = options.toast ?? ((text: string) => ownToasts?.show(text));
  const me = session.me.user_id;
  const cleanups: Array<() => void> = [];
  let disposed = false;

  // -- header and tabs ------------------------------------------------------------------------
  const title = h(
    "h2",
    { id: "admin-title", class: "conversation-name", tabindex: -1, "data-testid": "admin-title" },
    "Administration",
  );
  const back = options.onBack
    ? h(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-icon back",
          "aria-label": "Back to conversations",
          "data-testid": "admin-back",
          onclick: () => options.onBack?.(),
        },
        icon("back"),
      )
    : null;
  const head = h(
    "header",
    { class: "conversation-head admin-head" },
    back,
    h("span", { class: "admin-head-icon", "aria-hidden": "true" }, icon("shield")),
    h(
      "div",
      { class: "person-text" },
      title,
      h("span", { class: "person-status" }, "People, invitations and the health of this appliance"),
    ),
  );
  const tabButtons = new Map<TabName, HTMLButtonElement>();
  const panels = new Map<TabName, HTMLElement>();
  const tabList = h("div", {
    class: "admin-tabs",
    role: "tablist",
    "aria-label": "Administration",
  });
  for (const tab of TABS) {
    const button = h(
      "button",
      {
        type: "button",
        role: "tab",
        id: `admin-tab-${tab.name}`,
        class: "admin-tab",
        "aria-controls": `admin-panel-${tab.name}`,
        "aria-selected": "false",
        tabindex: -1,
        "data-testid": `admin-tab-${tab.name}`,
        onclick: () => select(tab.name, false),
      },
      tab.label,
    );
    tabButtons.set(tab.name, button);
    tabList.append(button);
  }
  tabList.addEventListener("keydown", (event) => {
    const order = TABS.map((t) => t.name);
    const at = order.indexOf(current);
    let next: number | null = null;
    if (event.key === "ArrowRight") next = (at + 1) % order.length;
    else if (event.key === "ArrowLeft") next = (at - 1 + order.length) % order.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = order.length - 1;
    if (next === null) return;
    event.preventDefault();
    select(order[next], true);
  });

  const menu = actionsMenu();
  const people = peoplePanel();
  const invitations = invitationsPanel();
  const health = healthPanel();
  panels.set("people", people.element);
  panels.set("invitations", invitations.element);
  panels.set("health", health.element);
  for (const [name, panel] of panels) {
    panel.id = `admin-panel-${name}`;
    setAttr(panel, "role", "tabpanel");
    setAttr(panel, "aria-labelledby", `admin-tab-${name}`);
    panel.hidden = true;
  }

  const body = h("div", { class: "admin-body" }, ...panels.values());
  const element = h(
    "section",
    { class: "admin", "data-testid": "admin-view", "aria-labelledby": "admin-title" },
    head,
    tabList,
    body,
    menu.element,
    ownToasts?.element,
  );
  body.addEventListener("scroll", () => menu.close(), { passive: true });

  let current: TabName = "people";
  function select(name: TabName, focus: boolean): void {
    menu.close();
    current = name;
    for (const [tab, button] of tabButtons) {
      const on = tab === name;
      setAttr(button, "aria-selected", on ? "true" : "false");
      button.tabIndex = on ? 0 : -1;
      const panel = panels.get(tab);
      if (panel) panel.hidden = !on;
    }
    try {
      sessionStorage.setItem(TAB_KEY, name);
    } catch {
      // no storage: the page opens on People next time
    }
    if (focus) tabButtons.get(name)?.focus();
    if (name === "people") people.shown();
    else if (name === "invitations") invitations.shown();
    else health.shown();
  }

  // -- People --------------------------------------------------------------------------------

  function peoplePanel(): { element: HTMLElement; shown(): void; tick(): void } {
    let users: AdminUser[] | null = null;
    let loadError: unknown = null;
    let loading = false;
    let filter = "";
    let refocus: number | null = null;
    let staleWhileMenu = false;
    let controller: AbortController | null = null;
    const presenceAt = new Map<number, number>();

    const count = h("span", { class: "admin-count", "data-testid": "admin-people-count" });
    const search = h("input", {
      class: "input admin-search",
      type: "search",
      placeholder: "Find a person",
      "aria-label": "Find a person",
      autocomplete: "off",
      spellcheck: "false",
      "data-testid": "admin-people-search",
    });
    search.addEventListener("input", () => {
      filter = search.value.trim().toLowerCase();
      render();
    });
    const refresh = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon",
        "aria-label": "Refresh",
        title: "Refresh",
        "data-testid": "admin-people-refresh",
        onclick: () => void load(),
      },
      icon("retry"),
    );
    const add = h(
      "button",
      {
        type: "button",
        class: "btn btn-primary admin-primary",
        "data-testid": "admin-add-user",
        onclick: () => void addPerson(),
      },
      localIcon("userPlus"),
      h("span", {}, "Add person"),
    );
    const problem = alertBox("admin-people-error");
    const dismiss = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon btn-icon-sm admin-alert-close",
        "aria-label": "Dismiss",
        onclick: () => problem.show(null),
      },
      icon("close"),
    );
    problem.element.append(dismiss);
    const tbody = h("tbody", { "data-testid": "admin-user-list" });
    const table = h(
      "table",
      { class: "admin-table admin-people-table", "data-testid": "admin-user-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Person"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Role"),
          h("th", { scope: "col" }, "Account"),
          h(
            "th",
            { scope: "col", class: "admin-col-actions" },
            h("span", { class: "visually-hidden" }, "Actions"),
          ),
        ),
      ),
      tbody,
    );
    const placeholder = h("div", { class: "admin-placeholder" });
    const element = h(
      "div",
      { class: "admin-panel", "data-testid": "admin-people" },
      h(
        "div",
        { class: "admin-toolbar" },
        h(
          "div",
          { class: "admin-toolbar-text" },
          h("h3", { class: "admin-section-title" }, "People"),
          count,
        ),
        h("div", { class: "admin-toolbar-actions" }, search, refresh, add),
      ),
      problem.element,
      h("div", { class: "admin-card" }, table, placeholder),
    );

    async function load(): Promise<void> {
      controller?.abort();
      const mine = new AbortController();
      controller = mine;
      loading = true;
      refresh.disabled = true;
      if (users === null) render();
      const since = performance.now();
      try {
        const fresh = await admin.listUsers(session, mine.signal);
        const known = new Map((users ?? []).map((u) => [u.user_id, u]));
        users = fresh.map((u) => {
          const old = known.get(u.user_id);
          const keep = old && (presenceAt.get(u.user_id) ?? -1) >= since;
          return keep ? { ...u, online: old.online, last_seen: old.last_seen } : u;
        });
        loadError = null;
      } catch (error) {
        if (mine.signal.aborted || disposed) return;
        loadError = error;
      } finally {
        if (controller === mine) {
          controller = null;
          loading = false;
          refresh.disabled = false;
        }
      }
      if (!disposed) render();
    }

    function statusCell(user: AdminUser): HTMLElement {
      const seen = admin.seconds(user.last_seen);
      const text = user.online
        ? "Online"
        : seen === null
          ? "Not seen yet"
          : sentence(lastSeenText(seen)).replace(/\.$/, "");
      return h(
        "span",
        {
          class: "admin-presence",
          "data-presence": user.online ? "online" : "offline",
          "data-testid": "admin-user-status",
          title: !user.online && seen !== null ? fullTime(seen) : null,
        },
        h("span", { class: "admin-presence-dot", "aria-hidden": "true" }),
        text,
      );
    }

    function row(user: AdminUser): HTMLTableRowElement {
      const self = user.user_id === me;
      const trigger = h(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-icon btn-icon-sm admin-more",
          "aria-label": `Actions for ${user.username}`,
          "aria-haspopup": "menu",
          "aria-expanded": "false",
          title: "Actions",
          "data-testid": "admin-user-actions",
        },
        localIcon("more"),
      );
      // A click on the button of the open menu closes it (light dismiss, before the click):
      // that click must not open it again.
      let wasOpen = false;
      trigger.addEventListener("pointerdown", () => {
        wasOpen = menu.openFor(trigger);
      });
      trigger.addEventListener("click", () => {
        if (wasOpen) {
          wasOpen = false;
          return;
        }
        refocus = user.user_id;
        menu.open(
          trigger,
          userActions(user),
          self ? "This is you. Another admin can change your own role or account." : null,
        );
      });
      const account = h("div", { class: "admin-badges" });
      account.append(
        user.disabled
          ? pill("Disabled", "muted", "admin-user-disabled")
          : pill("Active", "ok", "admin-user-active"),
      );
      if (user.must_change_password) {
        account.append(pill("Must change password", "warn", "admin-user-must-change"));
      }
      return h(
        "tr",
        {
          class: "admin-row",
          "data-testid": "admin-user",
          "data-user-id": user.user_id,
          "data-username": user.username,
          "data-disabled": user.disabled ? "true" : "false",
          "data-admin": user.is_admin ? "true" : "false",
        },
        h(
          "td",
          { class: "admin-cell-main" },
          h(
            "div",
            { class: "admin-person" },
            avatar(user.username),
            h(
              "div",
              { class: "admin-person-text" },
              h(
                "span",
                { class: "admin-person-name", "data-testid": "admin-user-name" },
                user.username,
                self ? h("span", { class: "admin-you" }, "You") : null,
              ),
              h(
                "span",
                { class: "admin-person-sub" },
                (() => {
                  const created = admin.seconds(user.created_at);
                  return created === null ? "" : `Added ${shortDate(created)}`;
                })(),
              ),
            ),
          ),
        ),
        h("td", { "data-label": "Status" }, statusCell(user)),
        h(
          "td",
          { "data-label": "Role" },
          user.is_admin
            ? h("span", { class: "badge", "data-testid": "admin-user-admin" }, "Admin")
            : h("span", { class: "admin-muted" }, "Member"),
        ),
        h("td", { "data-label": "Account" }, account),
        h("td", { class: "admin-cell-actions" }, trigger),
      );
    }

    function userActions(user: AdminUser): MenuItem[] {
      const self = user.user_id === me;
      return [
        {
          label: "Reset password…",
          icon: "key",
          testId: "admin-action-reset-password",
          disabled: self,
          run: () => void resetPassword(user),
        },
        user.is_admin
          ? {
              label: "Remove admin",
              icon: "shieldOff",
              testId: "admin-action-remove-admin",
              disabled: self,
              run: () => void change(user, { is_admin: false }),
            }
          : {
              label: "Make admin",
              icon: "shield",
              testId: "admin-action-make-admin",
              run: () => void makeAdmin(user),
            },
        user.disabled
          ? {
              label: "Enable account",
              icon: "userCheck",
              testId: "admin-action-enable",
              run: () => void change(user, { disabled: false }),
            }
          : {
              label: "Disable account…",
              icon: "ban",
              testId: "admin-action-disable",
              disabled: self,
              run: () => void disable(user),
            },
        {
          label: "Delete account…",
          icon: "trash",
          testId: "admin-action-delete",
          danger: true,
          disabled: self,
          run: () => void remove(user),
        },
      ];
    }

    function render(): void {
      if (menu.isOpen) {
        staleWhileMenu = true; // don't pull the row out from under an open menu
        return;
      }
      staleWhileMenu = false;
      const state = users === null ? (loadError ? "error" : "loading") : "ready";
      setAttr(element, "data-state", state);
      if (users === null) {
        table.hidden = true;
        placeholder.hidden = false;
        setText(count, "");
        placeholder.replaceChildren(
          loadError
            ? errorState("People could not be loaded", loadError, () => void load())
            : loadingState("Loading people…"),
        );
        return;
      }
      const online = users.filter((u) => u.online).length;
      setText(count, `${plural(users.length, "person", "people")} · ${online} online`);
      const shown = filter ? users.filter((u) => u.username.toLowerCase().includes(filter)) : users;
      const hadFocus =
        element.contains(document.activeElement) && document.activeElement !== search;
      tbody.replaceChildren(...shown.map(row));
      tableRoles(table);
      table.hidden = shown.length === 0;
      placeholder.hidden = shown.length > 0;
      if (shown.length === 0) {
        placeholder.replaceChildren(
          h(
            "p",
            { class: "admin-empty", "data-testid": "admin-people-empty" },
            filter ? `No one called “${search.value.trim()}”.` : "No accounts yet.",
          ),
        );
      }
      if (refocus !== null && (hadFocus || document.activeElement === document.body)) {
        tbody.querySelector<HTMLElement>(`tr[data-user-id="${refocus}"] .admin-more`)?.focus();
      }
    }
    menu.onClosed = () => {
      if (staleWhileMenu) render();
    };

    /** Put an updated account in the list (or take it out) and draw again. Presence heard on
     * the socket since `since` (ms) is newer than the answer's, and stays. */
    function replace(user: AdminUser | null, removedId?: number, since = 0): void {
      if (!users) return;
      if (user) {
        users = users.map((u) => {
          if (u.user_id !== user.user_id) return u;
          const fresher = (presenceAt.get(u.user_id) ?? -1) >= since;
          return fresher ? { ...user, online: u.online, last_seen: u.last_seen } : user;
        });
      } else {
        users = users.filter((u) => u.user_id !== removedId);
      }
      render();
    }

    function report(error: unknown, fallback: string, user: AdminUser): void {
      if (error instanceof ApiError && error.code === "not_found") {
        problem.show(`${user.username} no longer exists.`);
        void load();
        return;
      }
      if (error instanceof ApiError && error.code === "last_admin") {
        problem.show(
          `${user.username} is the last admin who can sign in. Make someone else an admin first, so that someone can still run this appliance.`,
        );
        return;
      }
      if (error instanceof ApiError && error.code === "conflict" && user.user_id === me) {
        problem.show("You can't do that to your own account. Ask another admin to do it.");
        return;
      }
      problem.show(failureText(error, fallback));
    }

    async function change(
      user: AdminUser,
      patch: { disabled?: boolean; is_admin?: boolean },
    ): Promise<void> {
      problem.show(null);
      const what =
        patch.is_admin === true
          ? {
              done: `${user.username} is now an admin.`,
              fail: `${user.username} could not be made an admin.`,
            }
          : patch.is_admin === false
            ? {
                done: `${user.username} is no longer an admin.`,
                fail: `Admin could not be removed from ${user.username}.`,
              }
            : patch.disabled
              ? {
                  done: `${user.username}'s account is disabled. They were signed out everywhere.`,
                  fail: `${user.username}'s account could not be disabled.`,
                }
              : {
                  done: `${user.username} can sign in again.`,
                  fail: `${user.username}'s account could not be enabled.`,
                };
      const since = performance.now();
      try {
        replace(await admin.updateUser(session, user.user_id, patch), undefined, since);
        toast(what.done);
      } catch (error) {
        report(error, what.fail, user);
      }
    }

    async function makeAdmin(user: AdminUser): Promise<void> {
      const ok = await confirmDialog(
        {
          title: `Make ${user.username} an admin?`,
          text: "Admins can add, disable and delete accounts, reset passwords, invite people and see the health of this appliance.",
          confirmLabel: "Make admin",
        },
        host,
      );
      if (ok) await change(user, { is_admin: true });
    }

    async function disable(user: AdminUser): Promise<void> {
      const ok = await confirmDialog(
        {
          title: `Disable ${user.username}'s account?`,
          text: `${user.username} will be signed out on every device at once and can't sign in until you enable the account again. Their messages and conversations stay.`,
          confirmLabel: "Disable",
          danger: true,
        },
        host,
      );
      if (ok) await change(user, { disabled: true });
    }

    async function remove(user: AdminUser): Promise<void> {
      problem.show(null);
      const ok = await confirmDialog(
        {
          title: `Delete ${user.username}'s account?`,
          text: `${user.username} will no longer be able to sign in and is removed from People and from group conversations. Their messages stay, shown as from “Deleted account”. The name ${user.username} becomes free for a new account. This can't be undone.`,
          confirmLabel: "Delete account",
          danger: true,
        },
        host,
      );
      if (!ok) return;
      try {
        await admin.deleteUser(session, user.user_id);
        refocus = null;
        replace(null, user.user_id);
        toast(`${user.username}'s account was deleted.`);
      } catch (error) {
        report(error, `${user.username}'s account could not be deleted.`, user);
      }
    }

    async function resetPassword(user: AdminUser): Promise<void> {
      problem.show(null);
      const password = passwordField("New temporary password", "admin-reset-password");
      let updated = false;
      const ok = await formDialog({
        title: `Reset ${user.username}'s password`,
        intro: `${user.username} will be signed out on every device and must choose a new password the next time they sign in. Give them this temporary one.`,
        testId: "admin-reset-dialog",
        submitLabel: "Reset password",
        submitTestId: "admin-reset-submit",
        fields: [password.element],
        host,
        valid: () => password.input.value.length > 0,
        async submit() {
          try {
            await admin.resetPassword(session, user.user_id, password.input.value);
            updated = true;
            return null;
          } catch (error) {
            if (error instanceof ApiError && error.code === "not_found") {
              void load();
              return `${user.username} no longer exists.`;
            }
            return failureText(error, "The password could not be reset. Try again.");
          }
        },
      });
      if (!ok || !updated) return;
      const current = users?.find((u) => u.user_id === user.user_id) ?? user;
      replace({ ...current, must_change_password: true });
      toast(`${user.username}'s password was reset. They must choose a new one when they sign in.`);
      void load();
    }

    async function addPerson(): Promise<void> {
      problem.show(null);
      const nameId = uid("admin-username");
      const username = h("input", {
        id: nameId,
        class: "input",
        type: "text",
        autocomplete: "off",
        autocapitalize: "none",
        spellcheck: "false",
        required: true,
        maxlength: 64,
        placeholder: "e.g. maria",
        "data-testid": "admin-new-username",
      });
      const password = passwordField("Temporary password", "admin-new-password");
      const mustChange = checkboxChoice(
        "Must change password at first sign-in",
        "Recommended: only they will know their password.",
        "admin-new-must-change",
        true,
      );
      const isAdmin = checkboxChoice(
        "Admin",
        "Can manage people and invitations and see the health of this appliance.",
        "admin-new-is-admin",
        false,
      );
      const result: { user: AdminUser | null } = { user: null };
      await formDialog({
        title: "Add a person",
        testId: "admin-add-dialog",
        submitLabel: "Add person",
        submitTestId: "admin-add-submit",
        fields: [
          h(
            "div",
            { class: "field" },
            h("label", { class: "label", for: nameId }, "Username"),
            username,
          ),
          password.element,
          h("div", { class: "choice-list" }, mustChange.element, isAdmin.element),
        ],
        host,
        valid: () => username.value.trim() !== "" && password.input.value.length > 0,
        async submit() {
          try {
            result.user = await admin.createUser(session, {
              username: username.value.trim(),
              password: password.input.value,
              is_admin: isAdmin.input.checked,
              must_change_password: mustChange.input.checked,
            });
            return null;
          } catch (error) {
            if (error instanceof ApiError && error.code === "conflict") {
              return `The name “${username.value.trim()}” is already taken. Choose another one.`;
            }
            return failureText(error, "The account could not be created. Try again.");
          }
        },
      });
      const user = result.user;
      if (!user) return;
      if (users && !users.some((u) => u.user_id === user.user_id)) users = [...users, user];
      refocus = user.user_id;
      render();
      toast(`${user.username} was added. Give them the password you chose.`);
      void load();
    }

    // Live presence: who comes and goes, without reloading the list.
    const socket = session.socket;
    const onOnline = (data: { user_id: number }): void => {
      presenceAt.set(data.user_id, performance.now());
      if (!users?.some((u) => u.user_id === data.user_id && !u.online)) return;
      users = users.map((u) => (u.user_id === data.user_id ? { ...u, online: true } : u));
      render();
    };
    const onOffline = (data: { user_id: number; last_seen: number }): void => {
      presenceAt.set(data.user_id, performance.now());
      if (!users?.some((u) => u.user_id === data.user_id)) return;
      users = users.map((u) =>
        u.user_id === data.user_id ? { ...u, online: false, last_seen: data.last_seen } : u,
      );
      render();
    };
    socket.on("user_online", onOnline);
    socket.on("user_offline", onOffline);
    cleanups.push(
      () => socket.off("user_online", onOnline),
      () => socket.off("user_offline", onOffline),
      () => controller?.abort(),
    );

    let loadedOnce = false;
    return {
      element,
      shown() {
        if (!loadedOnce || !loading) void load();
        loadedOnce = true;
      },
      tick() {
        if (!document.hidden) void load();
      },
    };
  }

  // -- Invitations -----------------------------------------------------------------------------

  function invitationsPanel(): { element: HTMLElement; shown(): void; tick(): void } {
    let items: Invitation[] | null = null;
    let loadError: unknown = null;
    let controller: AbortController | null = null;

    const count = h("span", { class: "admin-count", "data-testid": "admin-invitations-count" });
    const refresh = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-icon",
        "aria-label": "Refresh",
        title: "Refresh",
        "data-testid": "admin-invitations-refresh",
        onclick: () => void load(),
      },
      icon("retry"),
    );
    const create = h(
      "button",
      {
        type: "button",
        class: "btn btn-primary admin-primary",
        "data-testid": "admin-new-invitation",
        onclick: () => void newInvitation(),
      },
      localIcon("link"),
      h("span", {}, "New invitation"),
    );
    const problem = alertBox("admin-invitations-error");
    const tbody = h("tbody", { "data-testid": "admin-invitation-list" });
    const table = h(
      "table",
      { class: "admin-table admin-invitations-table", "data-testid": "admin-invitation-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Invitation"),
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, "Used"),
          h("th", { scope: "col" }, "Expires"),
          h("th", { scope: "col" }, "Joins as"),
          h(
            "th",
            { scope: "col", class: "admin-col-actions" },
            h("span", { class: "visually-hidden" }, "Actions"),
          ),
        ),
      ),
      tbody,
    );
    const placeholder = h("div", { class: "admin-placeholder" });
    const element = h(
      "div",
      { class: "admin-panel", "data-testid": "admin-invitations" },
      h(
        "div",
        { class: "admin-toolbar" },
        h(
          "div",
          { class: "admin-toolbar-text" },
          h("h3", { class: "admin-section-title" }, "Invitations"),
          count,
        ),
        h("div", { class: "admin-toolbar-actions" }, refresh, create),
      ),
      h(
        "p",
        { class: "admin-intro" },
        "Send someone a link instead of making an account for them: they choose their own username and password. Each link works for the number of people and the time you pick.",
      ),
      problem.element,
      h("div", { class: "admin-card" }, table, placeholder),
    );

    async function load(): Promise<void> {
      controller?.abort();
      const mine = new AbortController();
      controller = mine;
      refresh.disabled = true;
      if (items === null) render();
      try {
        items = await admin.listInvitations(session, mine.signal);
        loadError = null;
      } catch (error) {
        if (mine.signal.aborted || disposed) return;
        loadError = error;
      } finally {
        if (controller === mine) {
          controller = null;
          refresh.disabled = false;
        }
      }
      if (!disposed) render();
    }

    const STATE_LABEL: Record<InvitationState, [string, string]> = {
      active: ["Active", "ok"],
      expired: ["Expired", "muted"],
      used_up: ["Used up", "info"],
      revoked: ["Revoked", "danger"],
    };

    function row(item: Invitation): HTMLTableRowElement {
      const [label, tone] = STATE_LABEL[item.state] ?? [item.state, "muted"];
      const expires = admin.seconds(item.expires_at);
      const created = admin.seconds(item.created_at);
      const by = item.created_by?.username;
      const revoke =
        item.state === "active"
          ? h(
              "button",
              {
                type: "button",
                class: "btn btn-secondary btn-sm admin-revoke",
                "data-testid": "admin-invitation-revoke",
                onclick: () => void revokeOne(item),
              },
              "Revoke",
            )
          : null;
      const expiresText =
        expires === null || item.state === "revoked" || item.state === "used_up"
          ? "—"
          : item.state === "expired" || expires * 1000 <= serverNow()
            ? `Expired ${relative(expires)}`
            : item.state === "active"
              ? sentence(relative(expires)).replace(/\.$/, "")
              : shortDate(expires);
      return h(
        "tr",
        {
          class: "admin-row",
          "data-testid": "admin-invitation",
          "data-invitation-id": item.id,
          "data-state": item.state,
        },
        h(
          "td",
          { class: "admin-cell-main" },
          h(
            "div",
            { class: "admin-person" },
            h("span", { class: "admin-link-icon", "aria-hidden": "true" }, localIcon("link")),
            h(
              "div",
              { class: "admin-person-text" },
              h(
                "span",
                { class: "admin-person-name", "data-testid": "admin-invitation-note" },
                item.note || "Invitation link",
              ),
              h(
                "span",
                { class: "admin-person-sub" },
                [
                  by ? `Made by ${by}` : null,
                  created !== null ? `${shortDate(created)}, ${clockTime(created)}` : null,
                ]
                  .filter(Boolean)
                  .join(" · "),
              ),
            ),
          ),
        ),
        h("td", { "data-label": "State" }, pill(label, tone, "admin-invitation-state")),
        h(
          "td",
          { "data-label": "Used", class: "admin-num", "data-testid": "admin-invitation-uses" },
          `${item.uses} / ${item.max_uses}`,
        ),
        h(
          "td",
          {
            "data-label": "Expires",
            "data-testid": "admin-invitation-expires",
            title: expires !== null ? fullTime(expires) : null,
          },
          expiresText,
        ),
        h(
          "td",
          { "data-label": "Joins as" },
          item.is_admin
            ? h("span", { class: "badge" }, "Admin")
            : h("span", { class: "admin-muted" }, "Member"),
        ),
        h("td", { class: "admin-cell-actions" }, revoke),
      );
    }

    function render(): void {
      setAttr(element, "data-state", items === null ? (loadError ? "error" : "loading") : "ready");
      if (items === null) {
        table.hidden = true;
        placeholder.hidden = false;
        setText(count, "");
        placeholder.replaceChildren(
          loadError
            ? errorState("Invitations could not be loaded", loadError, () => void load())
            : loadingState("Loading invitations…"),
        );
        return;
      }
      const active = items.filter((i) => i.state === "active").length;
      setText(count, items.length ? `${active} active of ${items.length}` : "");
      const focused = document.activeElement;
      const focusId =
        focused instanceof HTMLElement && tbody.contains(focused)
          ? focused.closest("tr")?.dataset.invitationId
          : undefined;
      tbody.replaceChildren(...items.map(row));
      tableRoles(table);
      table.hidden = items.length === 0;
      placeholder.hidden = items.length > 0;
      if (items.length === 0) {
        placeholder.replaceChildren(
          h(
            "div",
            { class: "admin-empty", "data-testid": "admin-invitations-empty" },
            h("strong", {}, "No invitations yet"),
            h("span", {}, "Create a link and send it to the people who should join."),
          ),
        );
      }
      if (focusId !== undefined) {
        const again = tbody.querySelector<HTMLElement>(
          `tr[data-invitation-id="${CSS.escape(focusId)}"] button`,
        );
        (again ?? create).focus();
      }
    }

    async function revokeOne(item: Invitation): Promise<void> {
      problem.show(null);
      const ok = await confirmDialog(
        {
          title: "Revoke this invitation?",
          text: `${item.note ? `“${item.note}”: ` : ""}the link stops working at once. Accounts already made with it stay.`,
          confirmLabel: "Revoke",
          danger: true,
        },
        host,
      );
      if (!ok) return;
      try {
        await admin.revokeInvitation(session, item.id);
        if (items) {
          items = items.map((i) => (i.id === item.id ? { ...i, state: "revoked" as const } : i));
        }
        render();
        toast("The invitation was revoked. Its link no longer works.");
        void load();
      } catch (error) {
        if (error instanceof ApiError && error.code === "not_found") {
          void load();
          return;
        }
        problem.show(failureText(error, "The invitation could not be revoked. Try again."));
      }
    }

    async function newInvitation(): Promise<void> {
      problem.show(null);
      const usesId = uid("admin-uses");
      const expiryId = uid("admin-expiry");
      const noteId = uid("admin-note");
      const uses = h("input", {
        id: usesId,
        class: "input",
        type: "number",
        inputmode: "numeric",
        min: admin.INVITATION_LIMITS.minUses,
        max: admin.INVITATION_LIMITS.maxUses,
        step: 1,
        required: true,
        value: 1,
        "data-testid": "admin-invitation-uses-input",
      });
      const expiry = h(
        "select",
        { id: expiryId, class: "input", "data-testid": "admin-invitation-expiry" },
        h("option", { value: 3600 }, "1 hour"),
        h("option", { value: 86_400 }, "1 day"),
        h("option", { value: 3 * 86_400 }, "3 days"),
        h("option", { value: 7 * 86_400, selected: true }, "7 days"),
        h("option", { value: 30 * 86_400 }, "30 days"),
        h("option", { value: 90 * 86_400 }, "90 days"),
      );
      const note = h("input", {
        id: noteId,
        class: "input",
        type: "text",
        maxlength: admin.INVITATION_LIMITS.maxNote,
        autocomplete: "off",
        placeholder: "e.g. New reception staff",
        "data-testid": "admin-invitation-note-input",
      });
      const isAdmin = checkboxChoice(
        "People who join are admins",
        "Only for someone who will help run this appliance.",
        "admin-invitation-is-admin",
        false,
      );
      const usesValue = (): number => Number(uses.value);
      const usesValid = (): boolean =>
        Number.isInteger(usesValue()) &&
        usesValue() >= admin.INVITATION_LIMITS.minUses &&
        usesValue() <= admin.INVITATION_LIMITS.maxUses;
      uses.addEventListener("input", () =>
        setAttr(uses, "aria-invalid", usesValid() ? null : "true"),
      );
      const result: { invitation: admin.NewInvitation | null } = { invitation: null };
      await formDialog({
        title: "New invitation link",
        testId: "admin-invitation-dialog",
        submitLabel: "Create link",
        submitTestId: "admin-invitation-submit",
        fields: [
          h(
            "div",
            { class: "field-grid admin-field-grid" },
            h(
              "div",
              { class: "field" },
              h("label", { class: "label", for: usesId }, "How many people can join"),
              uses,
            ),
            h(
              "div",
              { class: "field" },
              h("label", { class: "label", for: expiryId }, "Expires after"),
              expiry,
            ),
          ),
          h(
            "div",
            { class: "field" },
            h(
              "label",
              { class: "label", for: noteId },
              "Note ",
              h("span", { class: "admin-optional" }, "(optional, only admins see it)"),
            ),
            note,
          ),
          isAdmin.element,
        ],
        host,
        valid: usesValid,
        async submit() {
          try {
            result.invitation = await admin.createInvitation(session, {
              max_uses: usesValue(),
              expires_in: Number(expiry.value),
              is_admin: isAdmin.input.checked,
              note: note.value.trim(),
            });
            return null;
          } catch (error) {
            return failureText(error, "The invitation could not be created. Try again.");
          }
        },
      });
      const made = result.invitation;
      if (!made) return;
      const { token: _token, url, ...listed } = made;
      if (items) items = [listed, ...items.filter((i) => i.id !== listed.id)];
      render();
      await showLinkOnce(made, url);
      void load();
      create.focus();
    }

    async function showLinkOnce(invitation: admin.NewInvitation, url: string): Promise<void> {
      const titleId = uid("admin-link-title");
      const link = h("textarea", {
        class: "input mono admin-link",
        readonly: true,
        rows: 2,
        spellcheck: "false",
        "aria-label": "Invitation link",
        "data-testid": "admin-invitation-link",
      });
      link.value = url;
      const copyIcon = h("span", { class: "admin-copy-icon" }, icon("copy"));
      const copyLabel = h("span", {}, "Copy link");
      const copy = h(
        "button",
        {
          type: "button",
          class: "btn btn-primary admin-copy",
          "data-testid": "admin-invitation-copy",
        },
        copyIcon,
        copyLabel,
      );
      const canShare = typeof navigator.share === "function";
      const share = canShare
        ? h(
            "button",
            { type: "button", class: "btn btn-secondary", "data-testid": "admin-invitation-share" },
            localIcon("share"),
            "Share",
          )
        : null;
      const expires = admin.seconds(invitation.expires_at);
      const who = invitation.max_uses === 1 ? "one person" : `up to ${invitation.max_uses} people`;
      const until = expires !== null ? ` until ${fullTime(expires)}` : "";
      const done = h(
        "button",
        { type: "button", class: "btn btn-secondary", "data-testid": "admin-invitation-done" },
        "Done",
      );
      const dialog = h(
        "dialog",
        {
          class: "modal admin-modal",
          "aria-labelledby": titleId,
          "data-testid": "admin-invitation-created",
        },
        h(
          "div",
          { class: "modal-form" },
          modalHead(titleId, "Invitation link ready", () => dialog.close()),
          h(
            "p",
            { class: "admin-dialog-intro" },
            `Send this link to the people you invite. It works for ${who}${until}${invitation.is_admin ? ", and they join as admins" : ""}.`,
          ),
          h(
            "div",
            { class: "admin-link-box" },
            link,
            h("div", { class: "admin-link-actions" }, copy, share),
          ),
          h(
            "div",
            { class: "alert alert-warning", "data-testid": "admin-invitation-once" },
            h("span", { class: "alert-icon" }, icon("alert")),
            h(
              "span",
              {},
              h("strong", {}, "Copy it now: "),
              "this link is shown only once and can't be shown again. If it gets lost, revoke it and make a new one.",
            ),
          ),
          h("div", { class: "modal-actions" }, done),
        ),
      );
      let resetLabel: number | undefined;
      copy.addEventListener("click", async () => {
        const copied = await copyText(url, link);
        setText(copyLabel, copied ? "Copied" : "Copy link");
        copyIcon.replaceChildren(icon(copied ? "check" : "copy"));
        copy.classList.toggle("is-copied", copied);
        if (!copied) {
          link.focus();
          link.select();
          toast("Copying isn't allowed here: the link is selected, copy it yourself.");
        }
        window.clearTimeout(resetLabel);
        resetLabel = window.setTimeout(() => {
          setText(copyLabel, "Copy link");
          copyIcon.replaceChildren(icon("copy"));
          copy.classList.remove("is-copied");
        }, 2_500);
      });
      share?.addEventListener("click", () => {
        navigator.share({ title: "Invitation", url }).catch(() => undefined);
      });
      done.addEventListener("click", () => dialog.close());
      link.addEventListener("focus", () => link.select());
      const closed = openModal(dialog, host);
      copy.focus();
      await closed;
      window.clearTimeout(resetLabel);
    }

    return {
      element,
      shown() {
        void load();
      },
      tick() {
        if (items && !document.hidden) render(); // "in 3 h" moves on
      },
    };
  }

  // -- Health ----------------------------------------------------------------------------------

  function healthPanel(): { element: HTMLElement; shown(): void } {
    let report: DoctorReport | null = null;
    let failure: unknown = null;
    let running: AbortController | null = null;
    let checkedAt: number | null = null;
    let ranOnce = false;
    let runs = 0;

    const when = h("span", { class: "admin-count", "data-testid": "admin-doctor-when" });
    const runLabel = h("span", {}, "Run checks again");
    const run = h(
      "button",
      {
        type: "button",
        class: "btn btn-secondary admin-primary",
        "data-testid": "admin-doctor-run",
        onclick: () => void check(),
      },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      icon("retry"),
      runLabel,
    );
    const verdict = h("div", {
      class: "admin-verdict",
      "data-testid": "admin-doctor-verdict",
      role: "status",
    });
    const tbody = h("tbody", { "data-testid": "admin-doctor-list" });
    const table = h(
      "table",
      { class: "admin-table admin-doctor-table", "data-testid": "admin-doctor-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Check"),
          h("th", { scope: "col" }, "Result"),
          h("th", { scope: "col" }, "Details"),
        ),
      ),
      tbody,
    );
    const placeholder = h("div", { class: "admin-placeholder" });
    const card = h("div", { class: "admin-card" }, table);
    const element = h(
      "div",
      { class: "admin-panel", "data-testid": "admin-health" },
      h(
        "div",
        { class: "admin-toolbar" },
        h(
          "div",
          { class: "admin-toolbar-text" },
          h("h3", { class: "admin-section-title" }, "Health"),
          when,
        ),
        h("div", { class: "admin-toolbar-actions" }, run),
      ),
      verdict,
      card,
      placeholder,
    );

    const CHECK_LABELS: Record<string, string> = {
      database: "Database",
      db: "Database",
      migrations: "Database migrations",
      wal: "Database journal",
      store: "File store",
      storage: "File store",
      turn: "TURN relay",
      turn_ssrf: "TURN address guard",
      stun: "STUN and NAT",
      nat: "STUN and NAT",
      certificate: "Certificate",
      tls: "Certificate",
      disk: "Disk space",
      disk_space: "Disk space",
      fds: "Open file limit",
      fd_limit: "Open file limit",
      file_descriptors: "Open file limit",
      clock: "Clock",
      ntp: "Clock",
      services: "Services",
      recorder: "Call recorder",
    };

    function checkLabel(name: string): string {
      const known = CHECK_LABELS[name.toLowerCase()];
      if (known) return known;
      const words = name.replace(/[_.-]+/g, " ").trim();
      return words.charAt(0).toUpperCase() + words.slice(1);
    }

    const STATUS: Record<CheckStatus, { label: string; tone: string; rank: number }> = {
      fail: { label: "Fail", tone: "danger", rank: 0 },
      warn: { label: "Warning", tone: "warn", rank: 1 },
      ok: { label: "OK", tone: "ok", rank: 2 },
      skip: { label: "Skipped", tone: "muted", rank: 3 },
    };

    function statusOf(status: string): { label: string; tone: string; rank: number } {
      return STATUS[status as CheckStatus] ?? { label: status, tone: "muted", rank: 4 };
    }

    async function check(): Promise<void> {
      running?.abort();
      const mine = new AbortController();
      running = mine;
      ranOnce = true;
      run.disabled = true;
      run.classList.add("is-busy");
      setText(runLabel, "Checking…");
      render();
      try {
        report = await admin.doctor(session, mine.signal);
        failure = null;
        checkedAt = serverNow() / 1000;
        runs += 1;
      } catch (error) {
        if (mine.signal.aborted || disposed) return;
        failure = error;
      } finally {
        if (running === mine) {
          running = null;
          run.disabled = false;
          run.classList.remove("is-busy");
          setText(runLabel, "Run checks again");
        }
      }
      if (!disposed) render();
    }

    function render(): void {
      const busy = running !== null;
      const unavailable =
        failure instanceof ApiError && (failure.status === 404 || failure.code === "not_found");
      setAttr(
        element,
        "data-state",
        busy ? "running" : failure ? "error" : report ? "ready" : "idle",
      );
      setAttr(element, "aria-busy", busy ? "true" : "false");
      setAttr(element, "data-runs", String(runs));
      setText(when, checkedAt !== null ? `Checked at ${clockTime(checkedAt)}` : "");
      run.hidden = unavailable;
      if (failure && !busy) {
        verdict.hidden = true;
        card.hidden = true;
        placeholder.hidden = false;
        placeholder.replaceChildren(
          unavailable
            ? h(
                "div",
                { class: "admin-empty", "data-testid": "admin-doctor-unavailable" },
                h("strong", {}, "Health checks are not available"),
                h(
                  "span",
                  {},
                  "This appliance's version has no health checks in the web page. Run `appliance doctor` on the box instead.",
                ),
              )
            : errorState("The checks could not be run", failure, () => void check()),
        );
        return;
      }
      if (!report) {
        verdict.hidden = true;
        card.hidden = true;
        placeholder.hidden = false;
        placeholder.replaceChildren(
          loadingState("Running checks… this can take up to half a minute."),
        );
        return;
      }
      placeholder.hidden = true;
      card.hidden = false;
      verdict.hidden = false;
      setAttr(card, "data-busy", busy ? "true" : null);

      const checks = [...report.checks].sort(
        (a, b) => statusOf(a.status).rank - statusOf(b.status).rank,
      );
      const failed = checks.filter((c) => c.status === "fail").length;
      const warned = checks.filter((c) => c.status === "warn").length;
      const passed = checks.filter((c) => c.status === "ok").length;
      const skipped = checks.filter((c) => c.status === "skip").length;
      const tone = failed > 0 || !report.ok ? "fail" : warned > 0 ? "warn" : "ok";
      const headline =
        tone === "fail"
          ? failed > 0
            ? `${plural(failed, "problem")} ${failed === 1 ? "needs" : "need"} attention`
            : "Something is wrong"
          : tone === "warn"
            ? `Working, with ${plural(warned, "warning")}`
            : "Everything looks healthy";
      const detail =
        tone === "fail"
          ? "Follow the advice next to each failed check. Things may not work for people until it is fixed."
          : tone === "warn"
            ? "Nothing is broken, but have a look at the warnings below."
            : "All checks passed.";
      const counts = [
        `${passed} passed`,
        warned ? `${warned} ${warned === 1 ? "warning" : "warnings"}` : null,
        failed ? `${failed} failed` : null,
        skipped ? `${skipped} skipped` : null,
      ]
        .filter(Boolean)
        .join(" · ");
      setAttr(verdict, "data-verdict", tone);
      verdict.replaceChildren(
        h(
          "span",
          { class: "admin-verdict-icon", "aria-hidden": "true" },
          localIcon(tone === "ok" ? "okCircle" : tone === "warn" ? "warnTriangle" : "failCircle"),
        ),
        h(
          "div",
          { class: "admin-verdict-text" },
          h(
            "strong",
            { class: "admin-verdict-title", "data-testid": "admin-doctor-headline" },
            headline,
          ),
          h("span", {}, detail),
          h("span", { class: "admin-verdict-counts" }, counts),
        ),
      );
      tbody.replaceChildren(
        ...checks.map((c) => {
          const status = statusOf(c.status);
          return h(
            "tr",
            {
              class: "admin-row",
              "data-testid": "admin-doctor-check",
              "data-check": c.name,
              "data-status": c.status,
            },
            h(
              "td",
              { class: "admin-cell-main" },
              h("span", { class: "admin-check-name" }, checkLabel(c.name)),
            ),
            h(
              "td",
              { "data-label": "Result" },
              pill(status.label, status.tone, "admin-doctor-status"),
            ),
            h(
              "td",
              { class: "admin-check-details", "data-label": "Details" },
              h("span", { class: "admin-check-summary" }, capitalise(c.summary)),
              c.fix && c.status !== "ok"
                ? h(
                    "span",
                    { class: "admin-check-fix", "data-testid": "admin-doctor-fix" },
                    h("strong", {}, "What to do: "),
                    c.fix,
                  )
                : null,
            ),
          );
        }),
      );
      tableRoles(table);
    }

    cleanups.push(() => running?.abort());
    return {
      element,
      shown() {
        if (!ranOnce) void check();
      },
    };
  }

  // -- shared states ---------------------------------------------------------------------------

  function loadingState(text: string): HTMLElement {
    return h(
      "div",
      { class: "admin-loading", "data-testid": "admin-loading" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      text,
    );
  }

  function errorState(heading: string, error: unknown, retry: () => void): HTMLElement {
    const forbidden = error instanceof ApiError && error.code === "forbidden";
    return h(
      "div",
      { class: "admin-empty admin-error", "data-testid": "admin-load-error" },
      h("strong", {}, heading),
      h(
        "span",
        {},
        forbidden
          ? "Your account is no longer an admin. Sign out and in again to update the page."
          : error instanceof NetworkError
            ? "Can't reach the appliance right now."
            : "Something went wrong on the appliance.",
      ),
      forbidden
        ? null
        : h(
            "button",
            { type: "button", class: "btn btn-secondary btn-sm", onclick: retry },
            "Try again",
          ),
    );
  }

  // -- life cycle ------------------------------------------------------------------------------

  const ticker = window.setInterval(() => {
    if (current === "people") people.tick();
    else if (current === "invitations") invitations.tick();
  }, REFRESH_MS);
  const offConnected = session.on("connected", () => {
    if (current === "people") people.tick(); // presence may have moved while disconnected
  });

  let initial: TabName = "people";
  try {
    const saved = sessionStorage.getItem(TAB_KEY);
    if (saved === "people" || saved === "invitations" || saved === "health") initial = saved;
  } catch {
    // no storage
  }
  select(initial, false);

  return {
    element,
    focusTitle() {
      title.focus();
    },
    dispose() {
      disposed = true;
      window.clearInterval(ticker);
      offConnected();
      menu.dispose();
      for (const cleanup of cleanups) cleanup();
      ownToasts?.dispose();
    },
  };
}

/** Copy with the Clipboard API, or the old way from the (selected) input. */
async function copyText(text: string, input: HTMLTextAreaElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.focus();
    input.select();
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }
}
