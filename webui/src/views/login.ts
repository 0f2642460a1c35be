// The sign-in page.

import { ApiError, NetworkError } from "../api.ts";
import { ACCOUNT_MESSAGES, MESSAGES, Session } from "../session.ts";
import { h } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";

export interface LoginOptions {
  /** Shown above the form, e.g. "You have signed out." */
  notice?: string;
  /** The organisation's name (config `organisation.name`), if set. */
  organisation?: string;
  onSignedIn: (session: Session) => void;
}

function formatWait(seconds: number): string {
  if (seconds <= 1) return "1 second";
  if (seconds <= 90) return `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function renderLogin(root: HTMLElement, options: LoginOptions): () => void {
  let countdown: number | undefined;
  let busy = false;
  let waitUntil = 0;

  const username = h("input", {
    id: "login-username",
    name: "username",
    type: "text",
    class: "input",
    autocomplete: "username",
    autocapitalize: "none",
    autocorrect: "off",
    spellcheck: "false",
    maxlength: 64,
    required: true,
    "data-testid": "login-username",
  });
  const password = h("input", {
    id: "login-password",
    name: "password",
    type: "password",
    class: "input",
    autocomplete: "current-password",
    maxlength: 1024,
    required: true,
    "data-testid": "login-password",
  });
  const errorText = h("span", { class: "alert-text" });
  const errorIcon = h("span", { class: "alert-icon" });
  const error = h(
    "div",
    { class: "alert alert-error", role: "alert", "data-testid": "login-error", hidden: true },
    errorIcon,
    errorText,
  );
  const submitLabel = h("span", {}, "Sign in");
  const submit = h(
    "button",
    { type: "submit", class: "btn btn-primary btn-block", "data-testid": "login-submit" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    submitLabel,
  );

  // "Your account has been disabled by an administrator." is a warning; "You have signed out." is not.
  const aboutAccount = options.notice !== undefined && ACCOUNT_MESSAGES.has(options.notice);
  const notice = options.notice
    ? h(
        "div",
        {
          class: `alert ${aboutAccount ? "alert-warning" : "alert-info"}`,
          role: "status",
          "data-testid": "login-notice",
        },
        h("span", { class: "alert-icon" }, icon(aboutAccount ? "alert" : "info")),
        h("span", { class: "alert-text" }, options.notice),
      )
    : null;

  const form = h(
    "form",
    { class: "auth-form", novalidate: true, "data-testid": "login-form", "aria-label": "Sign in" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "login-username", class: "label" }, "Username"),
      username,
    ),
    h(
      "div",
      { class: "field" },
      h("label", { for: "login-password", class: "label" }, "Password"),
      password,
    ),
    error,
    submit,
  );

  const page = h(
    "main",
    { class: "auth-page", "data-testid": "login-page" },
    h(
      "div",
      { class: "auth-card" },
      h(
        "div",
        { class: "auth-brand" },
        icon("logo", "logo logo-lg"),
        h("span", { class: "brand-name" }, "Appliance"),
      ),
      h("h1", { class: "auth-title" }, "Sign in"),
      h(
        "p",
        { class: "auth-subtitle", "data-testid": "login-organisation" },
        ...(options.organisation
          ? ["Chat and calls for ", h("strong", {}, options.organisation), "."]
          : ["Chat and calls for your team."]),
      ),
      notice,
      form,
    ),
    h("p", { class: "auth-footer" }, "Forgot your password? Ask your administrator."),
  );

  function showError(message: string, kind: "alert" | "clock" = "alert"): void {
    errorIcon.replaceChildren(icon(kind));
    error.className = `alert ${kind === "clock" ? "alert-warning" : "alert-error"}`;
    errorText.textContent = message;
    error.hidden = false;
  }

  function clearError(): void {
    error.hidden = true;
    errorText.textContent = "";
  }

  function setBusy(value: boolean): void {
    busy = value;
    submit.classList.toggle("is-busy", value);
    submit.setAttribute("aria-busy", String(value));
    submitLabel.textContent = value ? "Signing in…" : "Sign in";
    updateDisabled();
  }

  function updateDisabled(): void {
    submit.disabled = busy || Date.now() < waitUntil;
  }

  function startCountdown(seconds: number): void {
    window.clearInterval(countdown);
    waitUntil = Date.now() + seconds * 1000;
    const tick = (): void => {
      const left = Math.ceil((waitUntil - Date.now()) / 1000);
      if (left <= 0) {
        window.clearInterval(countdown);
        countdown = undefined;
        waitUntil = 0;
        showError("You can try signing in again now.", "clock");
      } else {
        showError(`Too many sign-in attempts. Try again in ${formatWait(left)}.`, "clock");
      }
      updateDisabled();
    };
    tick();
    countdown = window.setInterval(tick, 1000);
  }

  async function onSubmit(event: Event): Promise<void> {
    event.preventDefault();
    if (busy || Date.now() < waitUntil) return;
    const name = username.value.trim();
    if (!name || !password.value) {
      showError("Enter your username and password.");
      (name ? password : username).focus();
      return;
    }
    clearError();
    setBusy(true);
    try {
      const session = await Session.signIn(name, password.value);
      options.onSignedIn(session);
      return;
    } catch (err) {
      if (err instanceof ApiError && err.code === "rate_limited") {
        startCountdown(err.retryAfter ?? 30);
      } else if (err instanceof ApiError && err.code === "invalid_credentials") {
        showError("Wrong username or password.");
        password.select();
        password.focus();
      } else if (err instanceof ApiError && err.code === "account_disabled") {
        showError("Your account has been disabled. Ask your administrator to turn it back on.");
      } else if (err instanceof ApiError && err.status < 500) {
        showError(capitalise(err.message) + ".");
      } else if (err instanceof NetworkError) {
        showError(MESSAGES.unreachable);
      } else {
        console.error(err);
        showError("Something went wrong on the server. Try again in a moment.");
      }
    }
    setBusy(false);
  }

  form.addEventListener("submit", (event) => void onSubmit(event));
  root.replaceChildren(page);
  username.focus();

  return () => {
    window.clearInterval(countdown);
  };
}
