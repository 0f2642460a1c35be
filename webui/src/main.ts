// Entry point: resume this tab's session or show sign-in, and switch between the two.

import "./styles.css";
import { MESSAGES, Session } from "./session.ts";
import { renderLogin } from "./views/login.ts";
import { renderShell } from "./views/shell.ts";

const root = document.getElementById("app");
if (!root) throw new Error("#app is missing from index.html");
const app: HTMLElement = root;

let teardown: (() => void) | null = null;

function mount(title: string, render: () => () => void): void {
  teardown?.();
  teardown = null;
  document.title = title;
  teardown = render();
}

function showLogin(notice?: string): void {
  mount("Sign in · Appliance", () => renderLogin(app, { notice, onSignedIn: showShell }));
}

function showShell(session: Session): void {
  session.on("ended", ({ message }) => showLogin(message));
  mount("Appliance", () =>
    renderShell(app, session, { onSignedOut: () => showLogin(MESSAGES.signed_out) }),
  );
  session.start();
}

async function boot(): Promise<void> {
  const { session, message } = await Session.resume();
  if (session) showShell(session);
  else showLogin(message);
}

void boot();
