// The invitation page (`https://box/#invite=<token>`): check the link, then pick a username and
// a password and arrive signed in. Expired, used-up, withdrawn and unknown links each get a page
// that says what happened and what to do.

import {
  DEFAULT_MIN_LENGTH,
  acceptInvitation,
  badLink,
  checkInvitation,
  expiryText,
  newPasswordProblem,
  sentence,
  usernameProblem,
  type BadLink,
} from "../account.ts";
import { ApiError, NetworkError, unexpectedFailureText } from "../api.ts";
import type { InvitationCheck } from "../protocol.ts";
import { Session } from "../session.ts";
import { h } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";
import {
  accountIcon,
  formAlert,
  formField,
  passwordHint,
  setBusy,
  waitText,
  type AccountIconName,
} from "./account.ts";

export interface InviteOptions {
  onSignedIn: (session: Session) => void;
}

const BAD_LINKS: Record<BadLink, { icon: AccountIconName; title: string; text: string }> = {
  invalid: {
    icon: "linkOff",
    title: "This invitation link doesn't work",
    text:
      "The appliance doesn't know this link. It may have been cut short when it was copied: " +
      "open it again from the message you got, all of it.",
  },
  expired: {
    icon: "hourglass",
    title: "This invitation has expired",
    text: "Invitation links only work for a limited time, and this one has run out.",
  },
  used_up: {
    icon: "userCheck",
    title: "This invitation has already been used",
    text:
      "This link was made for a set number of new accounts, and all of them have been created. " +
      "If you already joined with it, sign in with the username and password you chose.",
  },
  revoked: {
    icon: "ban",
    title: "This invitation was withdrawn",
    text: "An administrator cancelled this link, so it can't be used any more.",
  },
};

function brand(): HTMLElement {
  return h(
    "div",
    { class: "auth-brand" },
    icon("logo", "logo logo-lg"),
    h("span", { class: "brand-name" }, "Appliance"),
  );
}

function page(testid: string, ...cards: Array<Node | null>): HTMLElement {
  return h("main", { class: "auth-page invite-page", "data-testid": testid }, ...cards);
}

export function renderInvite(root: HTMLElement, token: string, options: InviteOptions): () => void {
  let disposed = false;

  // -- bad links and trouble ------------------------------------------------------------------

  function showBad(reason: BadLink): void {
    const info = BAD_LINKS[reason];
    document.title = "Invitation · Appliance";
    root.replaceChildren(
      page(
        "invite-bad",
        h(
          "div",
          {
            class: "auth-card invite-card",
            "data-reason": reason,
            "data-testid": "invite-bad-card",
          },
          brand(),
          h(
            "span",
            { class: `invite-illo invite-illo-${reason}`, "aria-hidden": "true" },
            accountIcon(info.icon),
          ),
          h(
            "h1",
            { class: "auth-title invite-title", "data-testid": "invite-bad-title" },
            info.title,
          ),
          h("p", { class: "auth-subtitle" }, info.text),
          h(
            "p",
            { class: "invite-ask", "data-testid": "invite-ask" },
            h("strong", {}, "Ask your admin for a new link."),
            " They can make one on the appliance's admin page in a minute.",
          ),
          h(
            "a",
            { class: "btn btn-secondary btn-block", href: "/", "data-testid": "invite-sign-in" },
            "Go to sign in",
          ),
        ),
      ),
    );
  }

  function showTrouble(error: unknown): void {
    const retry = h(
      "button",
      { type: "button", class: "btn btn-primary btn-block", "data-testid": "invite-retry" },
      "Try again",
    );
    retry.addEventListener("click", () => void start());
    const limited = error instanceof ApiError && error.code === "rate_limited";
    root.replaceChildren(
      page(
        "invite-trouble",
        h(
          "div",
          { class: "auth-card invite-card" },
          brand(),
          h(
            "h1",
            { class: "auth-title invite-title" },
            "Your invitation can't be opened right now",
          ),
          h(
            "p",
            { class: "auth-subtitle" },
            limited
              ? `Too many attempts from your network. Try again in ${waitText(
                  (error as ApiError).retryAfter ?? 60,
                )}.`
              : error instanceof NetworkError
                ? "The appliance can't be reached. Check your connection " +
                  "(are you on the right network?) and try again."
                : "Something went wrong on the appliance. Try again in a moment.",
          ),
          retry,
        ),
      ),
    );
  }

  // -- the form --------------------------------------------------------------------------------

  function showForm(invitation: InvitationCheck): void {
    const minLength = invitation.password_min_length;
    const username = formField({
      label: "Username",
      testid: "invite-username",
      type: "text",
      autocomplete: "username",
      maxlength: 32,
      hint:
        "What others see and what you sign in with. " +
        "Letters, digits, dots, dashes and underscores.",
    });
    const password = formField({
      label: "Password",
      testid: "invite-password",
      autocomplete: "new-password",
      hint: passwordHint(minLength ?? DEFAULT_MIN_LENGTH),
    });
    const repeat = formField({
      label: "Repeat the password",
      testid: "invite-repeat",
      autocomplete: "new-password",
    });
    const alert = formAlert("invite-error");
    const label = h("span", {}, "Create account");
    const submit = h(
      "button",
      { type: "submit", class: "btn btn-primary btn-block", "data-testid": "invite-submit" },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      label,
    );
    const form = h(
      "form",
      {
        class: "auth-form",
        novalidate: true,
        "data-testid": "invite-form",
        "aria-label": "Create your account",
      },
      username.element,
      password.element,
      repeat.element,
      alert.element,
      submit,
    );
    const organisation = invitation.organisation.trim();
    const card = h(
      "div",
      { class: "auth-card invite-card" },
      brand(),
      h(
        "span",
        { class: "invite-illo invite-illo-welcome", "aria-hidden": "true" },
        accountIcon("mail"),
      ),
      h(
        "h1",
        { class: "auth-title invite-title", "data-testid": "invite-title" },
        organisation ? "You're invited to join " : "You're invited",
        organisation ? h("span", { "data-testid": "invite-organisation" }, organisation) : null,
      ),
      h(
        "p",
        { class: "auth-subtitle" },
        "Chat and call with your team on this appliance. " +
          "Choose a username and a password to create your account.",
      ),
      h(
        "ul",
        { class: "invite-facts", role: "list" },
        invitation.is_admin
          ? h(
              "li",
              { "data-testid": "invite-admin" },
              icon("shield"),
              h(
                "span",
                {},
                "You'll be an ",
                h("strong", {}, "administrator"),
                ": you can add people and look after the appliance.",
              ),
            )
          : null,
        h(
          "li",
          { "data-testid": "invite-expiry" },
          icon("clock"),
          h("span", {}, `This invitation expires ${expiryText(invitation.expires_at)}.`),
        ),
      ),
      form,
    );
    document.title = organisation ? `Join ${organisation} · Appliance` : "Invitation · Appliance";
    root.replaceChildren(
      page(
        "invite-page",
        card,
        h(
          "p",
          { class: "auth-footer" },
          "Already have an account? ",
          h("a", { href: "/", class: "auth-link" }, "Sign in"),
        ),
      ),
    );
    username.input.focus();

    let busy = false;

    function clear(): void {
      alert.clear();
      for (const field of [username, password, repeat]) field.setError(null);
    }

    function check(): HTMLInputElement | null {
      const name = username.input.value.trim();
      const nameProblem = usernameProblem(name);
      if (nameProblem) {
        username.setError(nameProblem);
        return username.input;
      }
      const problem = newPasswordProblem(password.input.value, { username: name, minLength });
      if (problem) {
        password.setError(problem);
        return password.input;
      }
      if (repeat.input.value !== password.input.value) {
        repeat.setError(repeat.input.value ? "The two passwords differ." : "Repeat the password.");
        return repeat.input;
      }
      return null;
    }

    async function onSubmit(event: Event): Promise<void> {
      event.preventDefault();
      if (busy) return;
      clear();
      const wrong = check();
      if (wrong) {
        wrong.focus();
        return;
      }
      busy = true;
      setBusy(submit, label, true, "Creating your account…");
      let session: Session | null = null;
      try {
        const name = username.input.value.trim();
        const tokens = await acceptInvitation(token, name, password.input.value);
        setBusy(submit, label, true, "Signing in…");
        session = await Session.fromTokens(tokens);
      } catch (error) {
        busy = false;
        setBusy(submit, label, false, "Create account");
        if (!disposed) showFailure(error);
        return;
      }
      if (!disposed) options.onSignedIn(session);
    }

    function showFailure(error: unknown): void {
      const gone = badLink(error);
      if (gone) {
        showBad(gone);
        return;
      }
      if (error instanceof ApiError) {
        const fields = error.fields;
        switch (error.code) {
          case "conflict":
            username.setError("That username is taken. Choose another one.");
            username.input.select();
            username.input.focus();
            return;
          case "weak_password":
            password.setError(sentence(fields.password ?? error.message));
            password.input.focus();
            return;
          case "invalid_request":
            if (fields.password) {
              password.setError(sentence(fields.password));
              password.input.focus();
            } else {
              username.setError(sentence(fields.username ?? error.message));
              username.input.focus();
            }
            return;
          case "rate_limited":
            alert.show(
              `Too many new accounts from your network just now. Try again in ${waitText(
                error.retryAfter ?? 60,
              )}.`,
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

    form.addEventListener("submit", (event) => void onSubmit(event));
  }

  // -- start -------------------------------------------------------------------------------------

  async function start(): Promise<void> {
    root.replaceChildren(
      page(
        "invite-checking",
        h(
          "div",
          { class: "auth-card invite-card invite-checking" },
          brand(),
          h(
            "p",
            { class: "invite-loading" },
            h("span", { class: "spinner", "aria-hidden": "true" }),
            "Opening your invitation…",
          ),
        ),
      ),
    );
    if (!token) {
      showBad("invalid");
      return;
    }
    try {
      const invitation = await checkInvitation(token);
      if (!disposed) showForm(invitation);
    } catch (error) {
      if (disposed) return;
      const gone = badLink(error);
      if (gone) showBad(gone);
      else {
        if (!(error instanceof ApiError || error instanceof NetworkError)) console.error(error);
        showTrouble(error);
      }
    }
  }

  void start();
  return () => {
    disposed = true;
  };
}
