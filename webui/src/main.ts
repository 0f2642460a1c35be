// Entry point: an invitation link, or resume this tab's session, or show sign-in; and switch
// between them.

import "./styles.css";
import { invitationToken } from "./account.ts";
import { MESSAGES, Session } from "./session.ts";
import { site } from "./setup.ts";
import { renderPasswordChange } from "./views/account.ts";
import { renderInvite } from "./views/invite.ts";
import { renderLogin } from "./views/login.ts";
import { renderShell } from "./views/shell.ts";
import { renderWizard } from "./views/setup.ts";

const root = document.getElementById("app");
if (!root) throw new Error("#app is missing from index.html");
const app: HTMLElement = root;

let teardown: (() => void) | null = null;
/** The organisation's name, shown on the sign-in page. */
let organisation = "";
/** The signed-in session the app is showing (shell or password change), if any. */
let active: Session | null = null;
let showing: "login" | "shell" | "password" | "invite" | "wizard" | null = null;

function mount(what: typeof showing, title: string, render: () => () => void): void {
  teardown?.();
  teardown = null;
  showing = what;
  document.title = title;
  teardown = render();
}

function showLogin(notice?: string): void {
  active = null;
  mount("login", "Sign in · Appliance", () =>
    renderLogin(app, { notice, organisation, onSignedIn: enter }),
  );
}

/** A session is signed in: the password change first if the server wants one, else the app. */
function enter(session: Session): void {
  if (active !== session) {
    active = session;
    session.on("ended", ({ message }) => {
      if (active === session) showLogin(message);
    });
    session.on("passwordChangeRequired", () => {
      if (active === session && showing !== "password") showPasswordChange(session);
    });
  }
  if (session.mustChangePassword) showPasswordChange(session);
  else showShell(session);
}

function showShell(session: Session): void {
  mount("shell", "Appliance", () =>
    renderShell(app, session, { onSignedOut: () => showLogin(MESSAGES.signed_out) }),
  );
  session.start();
}

function showPasswordChange(session: Session): void {
  mount("password", "Choose a new password · Appliance", () =>
    renderPasswordChange(app, session, {
      onDone: () => showShell(session),
      onSignedOut: () => showLogin(MESSAGES.signed_out),
    }),
  );
}

function showInvite(token: string): void {
  // For the sign-in page, should this person sign out later.
  void site()
    .then((info) => {
      organisation = info.name;
    })
    .catch(() => undefined);
  mount("invite", "Invitation · Appliance", () => renderInvite(app, token, { onSignedIn: enter }));
}

function showWizard(): void {
  // Until set-up is done, the wizard is all there is. Afterwards, start over from the top.
  mount("wizard", "Set-up · Appliance", () => renderWizard(app, { onDone: () => void boot() }));
}

/** An invitation link's token, taken out of the address bar (so it is not bookmarked or shared). */
function takeInvitation(): string | null {
  const token = invitationToken(location.hash);
  if (token !== null) history.replaceState(history.state, "", location.pathname + location.search);
  return token;
}

async function boot(): Promise<void> {
  const invitation = takeInvitation();
  if (invitation !== null) {
    showInvite(invitation);
    return;
  }
  try {
    const info = await site();
    if (info.setup_pending) {
      showWizard();
      return;
    }
    organisation = info.name;
  } catch {
    // Not answering yet (e.g. restarting): the sign-in page says so when it is used.
  }
  const { session, message } = await Session.resume();
  if (session) enter(session);
  else showLogin(message);
}

// An invitation link opened in a tab that is already open here: start over with it.
window.addEventListener("hashchange", () => {
  if (invitationToken(location.hash) !== null) location.reload();
});

void boot();
