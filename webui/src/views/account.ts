// Own account: the Account view in the shell's main area (change password, where you're signed
// in), the "Choose a new password" page shown before the shell when an admin reset the password,
// and the form pieces the invitation page shares.

import "../account.css";
import {
  DEFAULT_MIN_LENGTH,
  accountSessions,
  ago,
  changePassword,
  describeDevice,
  endAccountSession,
  newPasswordProblem,
  sentence,
  type DeviceKind,
} from "../account.ts";
import { ApiError, NetworkError, unexpectedFailureText } from "../api.ts";
import type { AccountSession } from "../protocol.ts";
import type { Session } from "../session.ts";
import { site, type SiteInfo } from "../setup.ts";
import { confirmDialog, uid } from "../ui/dialog.ts";
import { fromMarkup, h, setAttr, setText } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import { fullTime } from "../ui/time.ts";

// -- icons of these pages (static markup) ---------------------------------------------------------

const svg = (body: string, size = 20): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 24 24" ` +
  `fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" ` +
  `stroke-linejoin="round" aria-hidden="true" focusable="false">${body}</svg>`;

const ICONS = {
  account: svg(
    `<circle cx="12" cy="8" r="4"/><path d="M4 21v-1a6 6 0 0 1 6-6h4a6 6 0 0 1 6 6v1"/>`,
    18,
  ),
  key: svg(
    `<circle cx="7.5" cy="15.5" r="4.5"/><path d="m10.7 12.3 9.8-9.8"/><path d="m16 7 3 3"/>` +
      `<path d="m19 4 2 2"/>`,
  ),
  devices: svg(
    `<rect x="2" y="4" width="14" height="10" rx="1.5"/><path d="M6 18h6"/>` +
      `<rect x="17" y="8" width="5" height="12" rx="1.2"/>`,
  ),
  computer: svg(
    `<rect x="2" y="3" width="20" height="14" rx="2"/><path d="M8 21h8"/><path d="M12 17v4"/>`,
  ),
  phone: svg(`<rect x="6" y="2" width="12" height="20" rx="2.5"/><path d="M11 18h2"/>`),
  tablet: svg(`<rect x="4" y="2" width="16" height="20" rx="2.5"/><path d="M11 18h2"/>`),
  other: svg(
    `<circle cx="12" cy="12" r="9"/><path d="M3 12h18"/>` +
      `<path d="M12 3a14 14 0 0 1 0 18a14 14 0 0 1 0-18"/>`,
  ),
  linkOff: svg(
    `<path d="M9 17H7A5 5 0 0 1 7 7"/><path d="M15 7h2a5 5 0 0 1 4 8"/><path d="M8 12h4"/>` +
      `<path d="m2 2 20 20"/>`,
    28,
  ),
  hourglass: svg(
    `<path d="M6 2h12"/><path d="M6 22h12"/><path d="M7 2v4a5 5 0 0 0 10 0V2"/>` +
      `<path d="M7 22v-4a5 5 0 0 1 10 0v4"/>`,
    28,
  ),
  userCheck: svg(
    `<circle cx="9" cy="8" r="4"/><path d="M2 21v-1a6 6 0 0 1 6-6h2a6 6 0 0 1 4 1.5"/>` +
      `<path d="m16 19 2 2 4-4"/>`,
    28,
  ),
  ban: svg(`<circle cx="12" cy="12" r="9"/><path d="m5.7 5.7 12.6 12.6"/>`, 28),
  mail: svg(`<rect x="2" y="4" width="20" height="16" rx="2"/><path d="m22 7-10 6L2 7"/>`, 28),
} as const;

export type AccountIconName = keyof typeof ICONS;

export function accountIcon(name: AccountIconName, className = "icon"): Element {
  const el = fromMarkup(ICONS[name]);
  el.setAttribute("class", className);
  return el;
}

// -- form pieces ----------------------------------------------------------------------------------

export interface FormField {
  element: HTMLElement;
  input: HTMLInputElement;
  /** Show a message under the field (and mark it invalid), or clear it with null. */
  setError(message: string | null): void;
  setHint(text: string): void;
}

export function formField(options: {
  label: string;
  testid: string;
  type?: "text" | "password";
  autocomplete: string;
  hint?: string;
  maxlength?: number;
}): FormField {
  const id = uid(options.testid);
  const input = h("input", {
    id,
    name: options.testid,
    type: options.type ?? "password",
    class: "input",
    autocomplete: options.autocomplete,
    autocapitalize: "none",
    autocorrect: "off",
    spellcheck: "false",
    maxlength: options.maxlength ?? 1024,
    required: true,
    "data-testid": options.testid,
  });
  const error = h("p", {
    class: "field-error",
    id: `${id}-error`,
    "data-testid": `${options.testid}-error`,
    hidden: true,
  });
  const hint = options.hint
    ? h("p", { class: "field-hint", id: `${id}-hint` }, options.hint)
    : null;
  input.setAttribute("aria-describedby", hint ? `${id}-hint ${id}-error` : `${id}-error`);
  const element = h(
    "div",
    { class: "field" },
    h("label", { for: id, class: "label" }, options.label),
    input,
    hint,
    error,
  );
  return {
    element,
    input,
    setHint(text) {
      if (hint) hint.textContent = text;
    },
    setError(message) {
      if (message === null) {
        error.hidden = true;
        error.replaceChildren();
        input.removeAttribute("aria-invalid");
        if (hint) hint.hidden = false;
        return;
      }
      error.replaceChildren(
        h("span", { class: "field-error-icon" }, icon("alert")),
        h("span", {}, message),
      );
      error.hidden = false;
      if (hint) hint.hidden = true; // the error says what the hint would
      input.setAttribute("aria-invalid", "true");
    },
  };
}

export interface FormAlert {
  element: HTMLElement;
  show(message: string, kind?: "error" | "warning" | "success"): void;
  clear(): void;
}

export function formAlert(testid: string): FormAlert {
  const text = h("span", { class: "alert-text" });
  const mark = h("span", { class: "alert-icon" });
  const element = h(
    "div",
    { class: "alert alert-error", role: "alert", "data-testid": testid, hidden: true },
    mark,
    text,
  );
  return {
    element,
    show(message, kind = "error") {
      const glyph = kind === "warning" ? "clock" : kind === "success" ? "check" : "alert";
      mark.replaceChildren(icon(glyph));
      element.className = `alert alert-${kind === "success" ? "success" : kind}`;
      text.textContent = message;
      element.hidden = false;
    },
    clear() {
      element.hidden = true;
      text.textContent = "";
    },
  };
}

/** "30 seconds", "2 minutes". */
export function waitText(seconds: number): string {
  if (seconds <= 1) return "a second";
  if (seconds <= 90) return `${Math.ceil(seconds)} seconds`;
  return `${Math.ceil(seconds / 60)} minutes`;
}

/** The hint under a new password. */
export function passwordHint(minLength: number): string {
  return (
    `At least ${minLength} characters. ` +
    "Several words together are easy to remember and hard to guess."
  );
}

export function setBusy(
  button: HTMLButtonElement,
  label: HTMLElement,
  busy: boolean,
  text: string,
): void {
  button.classList.toggle("is-busy", busy);
  button.setAttribute("aria-busy", String(busy));
  button.disabled = busy;
  label.textContent = text;
}

// -- the password form (Account view and the forced change) ---------------------------------------

interface PasswordForm {
  element: HTMLFormElement;
  focus(): void;
}

function passwordForm(
  session: Session,
  options: {
    submitLabel: string;
    busyLabel: string;
    onChanged: () => void;
    testid: string;
    currentHint?: string;
  },
): PasswordForm {
  const current = formField({
    label: "Current password",
    testid: "current-password",
    autocomplete: "current-password",
    hint: options.currentHint,
  });
  const fresh = formField({
    label: "New password",
    testid: "new-password",
    autocomplete: "new-password",
    hint: passwordHint(DEFAULT_MIN_LENGTH),
  });
  // The server's minimum, when it tells (GET /api/site); the shipped default until then.
  let minLength: number | undefined;
  void site()
    .then((info: SiteInfo & { password_min_length?: unknown }) => {
      if (typeof info.password_min_length !== "number") return;
      minLength = info.password_min_length;
      fresh.setHint(passwordHint(minLength));
    })
    .catch(() => undefined);
  const repeat = formField({
    label: "Repeat the new password",
    testid: "repeat-password",
    autocomplete: "new-password",
  });
  const alert = formAlert(`${options.testid}-error`);
  const label = h("span", {}, options.submitLabel);
  const submit = h(
    "button",
    { type: "submit", class: "btn btn-primary", "data-testid": `${options.testid}-submit` },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    label,
  );
  // The username, hidden, so password managers file the new password under the right account.
  const username = h("input", {
    type: "text",
    name: "username",
    autocomplete: "username",
    value: session.me.username,
    hidden: true,
    readonly: true,
    tabindex: -1,
    "aria-hidden": "true",
  });
  const element = h(
    "form",
    { class: "auth-form password-form", novalidate: true, "data-testid": options.testid },
    username,
    current.element,
    fresh.element,
    repeat.element,
    alert.element,
    h("div", { class: "form-actions" }, submit),
  );
  let busy = false;

  function clear(): void {
    alert.clear();
    for (const field of [current, fresh, repeat]) field.setError(null);
  }

  function check(): FormField | null {
    if (!current.input.value) {
      current.setError("Enter your current password.");
      return current;
    }
    const problem = newPasswordProblem(fresh.input.value, {
      username: session.me.username,
      minLength,
    });
    if (problem) {
      fresh.setError(problem);
      return fresh;
    }
    if (fresh.input.value === current.input.value) {
      fresh.setError("Choose a password different from your current one.");
      return fresh;
    }
    if (repeat.input.value !== fresh.input.value) {
      repeat.setError(
        repeat.input.value ? "The two new passwords differ." : "Repeat the new password.",
      );
      return repeat;
    }
    return null;
  }

  async function onSubmit(event: Event): Promise<void> {
    event.preventDefault();
    if (busy) return;
    clear();
    const wrong = check();
    if (wrong) {
      wrong.input.focus();
      return;
    }
    busy = true;
    setBusy(submit, label, true, options.busyLabel);
    try {
      const [was, next] = [current.input.value, fresh.input.value];
      await session.authed((token) => changePassword(token, was, next));
      for (const field of [current, fresh, repeat]) field.input.value = "";
      options.onChanged();
    } catch (error) {
      showFailure(error);
    } finally {
      busy = false;
      setBusy(submit, label, false, options.submitLabel);
    }
  }

  function showFailure(error: unknown): void {
    if (error instanceof ApiError) {
      const fields = error.fields;
      const fieldMessage = fields.new_password ?? fields.password;
      switch (error.code) {
        case "invalid_credentials":
          current.setError("That isn't your current password.");
          current.input.select();
          current.input.focus();
          return;
        case "weak_password":
          fresh.setError(sentence(fieldMessage ?? error.message));
          fresh.input.focus();
          return;
        case "invalid_request":
          if (fields.current_password) {
            current.setError(sentence(fields.current_password));
            current.input.focus();
          } else {
            fresh.setError(sentence(fieldMessage ?? error.message));
            fresh.input.focus();
          }
          return;
        case "rate_limited":
          alert.show(
            `Too many attempts. Try again in ${waitText(error.retryAfter ?? 30)}.`,
            "warning",
          );
          return;
        default:
          if (error.status < 500) {
            alert.show(sentence(error.message));
            return;
          }
      }
    }
    alert.show(unexpectedFailureText(error));
  }

  element.addEventListener("submit", (event) => void onSubmit(event));
  return { element, focus: () => current.input.focus() };
}

// -- "Choose a new password" before the shell -----------------------------------------------------

export interface PasswordChangeOptions {
  onDone: () => void;
  onSignedOut: () => void;
}

export function renderPasswordChange(
  root: HTMLElement,
  session: Session,
  options: PasswordChangeOptions,
): () => void {
  const form = passwordForm(session, {
    submitLabel: "Save and continue",
    busyLabel: "Saving…",
    testid: "force-password-form",
    currentHint: "The temporary one you just signed in with.",
    onChanged: () => {
      session.passwordChanged();
      options.onDone();
    },
  });
  const signOutLabel = h("span", {}, "Sign out");
  const signOut = h(
    "button",
    { type: "button", class: "link-button", "data-testid": "force-password-sign-out" },
    signOutLabel,
  );
  signOut.addEventListener("click", async () => {
    signOut.disabled = true;
    signOutLabel.textContent = "Signing out…";
    await session.signOut();
    options.onSignedOut();
  });
  const page = h(
    "main",
    { class: "auth-page", "data-testid": "force-password-page" },
    h(
      "div",
      { class: "auth-card" },
      h(
        "div",
        { class: "auth-brand" },
        icon("logo", "logo logo-lg"),
        h("span", { class: "brand-name" }, "Appliance"),
      ),
      h("h1", { class: "auth-title" }, "Choose a new password"),
      h(
        "p",
        { class: "auth-subtitle" },
        "Hello ",
        h("strong", {}, session.me.username),
        ". Your administrator gave you a temporary password: choose your own before you " +
          "continue. Only you will know it.",
      ),
      form.element,
    ),
    h("p", { class: "auth-footer" }, "Not you? ", signOut),
  );
  root.replaceChildren(page);
  form.focus();
  return () => undefined;
}

// -- the Account view (shell's main area) ---------------------------------------------------------

export interface AccountView {
  element: HTMLElement;
  focusTitle(): void;
  dispose(): void;
}

export interface AccountViewOptions {
  session: Session;
  onBack: () => void;
  toast: (text: string) => void;
  dialogHost: HTMLElement;
}

const KIND_LABEL: Record<DeviceKind, string> = {
  phone: "Phone",
  tablet: "Tablet",
  computer: "Computer",
  other: "Other",
};

export function accountView(options: AccountViewOptions): AccountView {
  const { session } = options;
  let disposed = false;
  let sessions: AccountSession[] | null = null;
  let loadError: unknown = null;
  let loading = false;

  const back = h(
    "button",
    {
      type: "button",
      class: "btn btn-ghost btn-icon back",
      "aria-label": "Back to conversations",
      "data-testid": "account-back",
      onclick: () => options.onBack(),
    },
    icon("back"),
  );
  const title = h(
    "h2",
    {
      id: "account-title",
      class: "conversation-name",
      tabindex: -1,
      "data-testid": "account-title",
    },
    "Account",
  );
  const head = h(
    "header",
    { class: "conversation-head" },
    back,
    h("span", { class: "account-head-icon", "aria-hidden": "true" }, accountIcon("account")),
    h(
      "div",
      { class: "person-text" },
      title,
      h("span", { class: "person-status" }, `Signed in as ${session.me.username}`),
    ),
  );

  // -- password card --
  const form = passwordForm(session, {
    submitLabel: "Change password",
    busyLabel: "Changing…",
    testid: "password-form",
    onChanged: () => {
      options.toast("Your password was changed. Your other devices were signed out.");
      void reload();
    },
  });
  const passwordCard = h(
    "section",
    {
      class: "account-card",
      "aria-labelledby": "account-password-title",
      "data-testid": "account-password",
    },
    h(
      "div",
      { class: "account-card-head" },
      h("span", { class: "account-card-icon", "aria-hidden": "true" }, accountIcon("key")),
      h(
        "div",
        { class: "account-card-text" },
        h("h3", { id: "account-password-title", class: "account-card-title" }, "Password"),
        h(
          "p",
          { class: "account-card-sub" },
          "Changing your password signs you out on your other devices. This one stays signed in.",
        ),
      ),
    ),
    form.element,
  );

  // -- sessions card --
  const endOthers = h(
    "button",
    {
      type: "button",
      class: "btn btn-secondary btn-sm",
      "data-testid": "sessions-end-others",
      onclick: () => void signOutOthers(),
    },
    "Sign out everywhere else",
  );
  const list = h("ul", { class: "session-list", role: "list", "data-testid": "session-list" });
  const placeholder = h("div", { class: "session-placeholder", "data-testid": "sessions-state" });
  const sessionsCard = h(
    "section",
    {
      class: "account-card",
      "aria-labelledby": "account-sessions-title",
      "data-testid": "account-sessions",
    },
    h(
      "div",
      { class: "account-card-head" },
      h("span", { class: "account-card-icon", "aria-hidden": "true" }, accountIcon("devices")),
      h(
        "div",
        { class: "account-card-text" },
        h(
          "h3",
          { id: "account-sessions-title", class: "account-card-title" },
          "Where you're signed in",
        ),
        h(
          "p",
          { class: "account-card-sub" },
          "Browsers and devices signed in to your account. " +
            "Sign out any you don't recognise, then change your password.",
        ),
      ),
    ),
    list,
    placeholder,
    h("div", { class: "account-card-foot" }, endOthers),
  );

  const body = h(
    "div",
    { class: "account-body" },
    h("div", { class: "account-cards" }, passwordCard, sessionsCard),
  );
  const element = h(
    "section",
    { class: "account", "data-testid": "account-view", "aria-labelledby": "account-title" },
    head,
    body,
  );

  function row(item: AccountSession): HTMLLIElement {
    const device = describeDevice(item.user_agent);
    const parts: Node[] = [];
    if (item.client_address) {
      parts.push(h("span", { "data-testid": "session-address" }, item.client_address));
    }
    const signedIn = h(
      "span",
      { title: fullTime(item.created_at) },
      `Signed in ${ago(item.created_at)}`,
    );
    parts.push(signedIn);
    const active = item.current
      ? h("span", { class: "session-now" }, "Active now")
      : item.last_used_at !== null
        ? h("span", { title: fullTime(item.last_used_at) }, `Last active ${ago(item.last_used_at)}`)
        : null;
    if (active) parts.push(active);
    // The separating dots are CSS: each item's dot sits left of it, and the one starting a
    // line is clipped, so no line of a wrapped list starts or ends with a dot.
    const meta = h(
      "span",
      { class: "session-meta", "data-testid": "session-meta" },
      h("span", { class: "session-meta-items" }, ...parts),
    );
    const end = item.current
      ? null
      : h(
          "button",
          {
            type: "button",
            class: "btn btn-ghost btn-sm session-end",
            "data-testid": "session-end",
            "aria-label": item.client_address
              ? `Sign out ${device.name} at ${item.client_address}`
              : `Sign out ${device.name}`,
          },
          "Sign out",
        );
    end?.addEventListener("click", () => void endOne(item, end));
    return h(
      "li",
      {
        class: "session",
        "data-testid": "session",
        "data-current": item.current ? "true" : "false",
        "data-session-id": String(item.id),
      },
      h(
        "span",
        { class: "session-icon", title: KIND_LABEL[device.kind], "aria-hidden": "true" },
        accountIcon(device.kind),
      ),
      h(
        "div",
        { class: "session-text" },
        h(
          "span",
          { class: "session-line" },
          h("strong", { class: "session-device", "data-testid": "session-device" }, device.name),
          item.current
            ? h(
                "span",
                { class: "badge badge-success", "data-testid": "session-this" },
                "This device",
              )
            : null,
        ),
        meta,
      ),
      end,
    );
  }

  function render(): void {
    const others = sessions?.filter((item) => !item.current).length ?? 0;
    endOthers.disabled = loading || others === 0;
    endOthers.hidden = sessions === null;
    const state = sessions === null ? (loadError ? "error" : "loading") : "ready";
    setAttr(sessionsCard, "data-state", state);
    if (sessions === null) {
      list.hidden = true;
      placeholder.hidden = false;
      if (loadError) {
        placeholder.replaceChildren(
          h(
            "span",
            {},
            loadError instanceof NetworkError
              ? "Can't reach the appliance right now. "
              : "Your sessions could not be loaded. ",
          ),
          h(
            "button",
            { type: "button", class: "link-button", onclick: () => void reload() },
            "Try again",
          ),
        );
      } else {
        placeholder.replaceChildren(
          h("span", { class: "spinner", "aria-hidden": "true" }),
          h("span", {}, "Loading…"),
        );
      }
      return;
    }
    list.hidden = false;
    placeholder.hidden = others > 0;
    placeholder.replaceChildren(h("span", {}, "You aren't signed in anywhere else."));
    // This device first, then the others newest first (as the server sends them).
    const ordered = [...sessions.filter((s) => s.current), ...sessions.filter((s) => !s.current)];
    // Keep the keyboard where it was when the rows are rebuilt.
    const focused = document.activeElement
      ?.closest("[data-session-id]")
      ?.getAttribute("data-session-id");
    list.replaceChildren(...ordered.map(row));
    if (focused) {
      list
        .querySelector<HTMLElement>(`[data-session-id="${CSS.escape(focused)}"] .session-end`)
        ?.focus();
    }
  }

  async function reload(): Promise<void> {
    if (disposed) return;
    loading = true;
    render();
    try {
      const res = await session.authed((token) => accountSessions(token));
      sessions = res.sessions;
      loadError = null;
    } catch (error) {
      if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
      loadError = error;
      if (sessions !== null) options.toast("Your sessions could not be refreshed.");
    } finally {
      loading = false;
    }
    if (!disposed) render();
  }

  async function endOne(item: AccountSession, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    setText(button, "Signing out…");
    try {
      await session.authed((token) => endAccountSession(token, item.id));
      options.toast(`${describeDevice(item.user_agent).name} was signed out.`);
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "not_found")) {
        if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
        options.toast("That device could not be signed out. Try again.");
      }
    }
    await reload();
  }

  async function signOutOthers(): Promise<void> {
    const others = sessions?.filter((item) => !item.current) ?? [];
    if (others.length === 0) return;
    const ok = await confirmDialog(
      {
        title: "Sign out everywhere else?",
        text:
          others.length === 1
            ? "Your other device will be signed out. You stay signed in here."
            : `Your ${others.length} other devices and browsers will be signed out. ` +
              "You stay signed in here.",
        confirmLabel: "Sign out others",
        danger: true,
      },
      options.dialogHost,
    );
    if (!ok || disposed) return;
    endOthers.disabled = true;
    const results = await Promise.allSettled(
      others.map((item) => session.authed((token) => endAccountSession(token, item.id))),
    );
    const failed = results.filter(
      (r) =>
        r.status === "rejected" &&
        !(r.reason instanceof ApiError && r.reason.code === "not_found"),
    ).length;
    options.toast(
      failed === 0
        ? "You were signed out everywhere else."
        : "Some devices could not be signed out. Try again.",
    );
    await reload();
  }

  render();
  void reload();
  const ticker = window.setInterval(() => {
    if (sessions !== null) render(); // "Last active 5 min ago" moves on
  }, 60_000);

  return {
    element,
    focusTitle() {
      title.focus();
    },
    dispose() {
      disposed = true;
      window.clearInterval(ticker);
    },
  };
}
