// Entry point: resume this tab's session or show sign-in, and switch between the two.

import "./styles.css";
import { MESSAGES, Session } from "./session.ts";
import { site } from "./setup.ts";
import { renderLogin } from "./views/login.ts";
import { renderShell } from "./views/shell.ts";
import { renderWizard } from "./views/setup.ts";

const root = document.getElementById("app");
if (!root) throw new Error("#app is missing from index.html");
const app: HTMLElement = root;

let teardown: (() => void) | null = null;
/** The organisation's name, shown on the sign-in page. */
let organisation = "";

function mount(title: string, render: () => () => void): void {
  teardown?.();
  teardown = null;
  document.title = title;
  teardown = render();
}

function showLogin(notice?: string): void {
  mount("Sign in · Appliance", () =>
    renderLogin(app, { notice, organisation, onSignedIn: showShell }),
  );
}

function showShell(session: Session): void {
  session.on("ended", ({ message }) => showLogin(message));
  mount("Appliance", () =>
    renderShell(app, session, { onSignedOut: () => showLogin(MESSAGES.signed_out) }),
  );
  session.start();
}

function showWizard(): void {
  // Until set-up is done, the wizard is all there is. Afterwards, start over from the top.
  mount("Set-up · Appliance", () => renderWizard(app, { onDone: () => void boot() }));
}

async function boot(): Promise<void> {
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
  if (session) showShell(session);
  else showLogin(message);
}

void boot();
