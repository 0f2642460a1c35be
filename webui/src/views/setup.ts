// The first-run set-up wizard: the one-time token, one screen per step with Back/Next (each step
// checked by the server, its errors shown next to their field), a summary, Finish, and the
// address to share with a QR code.

import { ApiError, NetworkError } from "../api.ts";
import { MESSAGES } from "../session.ts";
import * as setupApi from "../setup.ts";
import type {
  CertificateSummary,
  Environment,
  FinishResult,
  FirewallRule,
  SetupDraft,
  SetupPlan,
  StepName,
  StunReport,
} from "../setup.ts";
import { STEPS } from "../setup.ts";
import { h } from "../ui/dom.ts";
import { icon } from "../ui/icons.ts";

export interface WizardOptions {
  /** Set-up is over (finished here, or elsewhere): go to sign-in. */
  onDone: () => void;
}

type Control = HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;

interface Screen {
  title: string;
  lead: string;
  body: Node[];
  /** Write the screen's inputs into the draft; a map of local errors (e.g. not a number). */
  collect?: () => Record<string, string>;
  focus?: HTMLElement;
}

const STEP_TITLES: Record<StepName, string> = {
  organisation: "Organisation",
  admin: "Administrator",
  reach: "Reaching the appliance",
  tls: "Secure connection",
  turn: "Calls across networks",
  storage: "File storage",
  recording: "Call recording",
};

/** `#setup=<token>` in the address (as the installer prints it); removed from the address bar. */
function tokenFromFragment(): string {
  const match = /(?:^#|&)setup=([^&]+)/.exec(window.location.hash);
  if (!match) return "";
  history.replaceState(null, "", window.location.pathname + window.location.search);
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return "";
  }
}

function parsePort(value: string): number | null | "bad" {
  const text = value.trim();
  if (!text) return null;
  return /^\d{1,6}$/.test(text) ? Number(text) : "bad";
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function sentence(text: string): string {
  const trimmed = capitalise(text.trim());
  return /[.!?)]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

export function firewallRules(
  web: { port: number; https_port: number },
  turn: NonNullable<SetupDraft["turn"]>,
): FirewallRule[] {
  const rules: FirewallRule[] = [];
  if (web.https_port) rules.push({ ports: String(web.https_port), protocol: "TCP", purpose: "HTTPS" });
  rules.push({
    ports: String(web.port),
    protocol: "TCP",
    purpose: "HTTP (redirect and /trust page)",
  });
  rules.push({ ports: String(turn.port ?? "?"), protocol: "UDP and TCP", purpose: "STUN and TURN" });
  rules.push({ ports: String(turn.tls_port ?? "?"), protocol: "TCP", purpose: "TURN over TLS" });
  rules.push({
    ports: `${turn.min_port ?? "?"}-${turn.max_port ?? "?"}`,
    protocol: "UDP",
    purpose: "call media relay",
  });
  return rules;
}

function firewallTable(rules: FirewallRule[]): HTMLElement {
  return h(
    "table",
    { class: "port-table", "data-testid": "firewall" },
    h("thead", {}, h("tr", {}, h("th", {}, "Port"), h("th", {}, "Protocol"), h("th", {}, "For"))),
    h(
      "tbody",
      {},
      ...rules.map((rule) =>
        h(
          "tr",
          {},
          h("td", { class: "mono" }, rule.ports),
          h("td", {}, rule.protocol),
          h("td", {}, rule.purpose),
        ),
      ),
    ),
  );
}

export function renderWizard(root: HTMLElement, options: WizardOptions): () => void {
  let token = tokenFromFragment();
  let env: Environment | null = null;
  let draft: SetupDraft = {};
  let confirmPassword = "";
  let certificate: CertificateSummary | null = null;
  let stunReport: StunReport | "loading" | "failed" | null = null;
  let result: FinishResult | null = null;
  // 0: token; 1..7: the steps; 8: summary; 9: done; -1: already done elsewhere.
  let index = 0;
  let busy = false;
  let countdown: number | undefined;
  let pendingErrors: Record<string, string> | null = null;
  let disposed = false;
  const controls = new Map<string, { control: Control; error: HTMLElement }>();

  // -- the frame ----------------------------------------------------------------------------
  const progressText = h("span", { "data-testid": "setup-progress" });
  const progressName = h("span", {});
  const progressFill = h("span", {});
  const progress = h(
    "div",
    { class: "setup-progress" },
    h("div", { class: "setup-progress-text" }, progressText, progressName),
    h("div", { class: "setup-progress-bar", "aria-hidden": "true" }, progressFill),
  );
  const alertText = h("span", { class: "alert-text" });
  const alertIcon = h("span", { class: "alert-icon" });
  const alert = h(
    "div",
    { class: "alert alert-error", role: "alert", "data-testid": "setup-error", hidden: true },
    alertIcon,
    alertText,
  );
  const title = h("h1", { class: "setup-title", "data-testid": "setup-title" });
  const lead = h("p", { class: "setup-lead" });
  const content = h("div", { class: "setup-content" });
  const back = h(
    "button",
    { type: "button", class: "btn btn-secondary", "data-testid": "setup-back" },
    "Back",
  );
  const nextLabel = h("span", {}, "Next");
  const next = h(
    "button",
    { type: "submit", class: "btn btn-primary", "data-testid": "setup-next" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    nextLabel,
  );
  const actions = h("div", { class: "setup-actions" }, back, next);
  const form = h(
    "form",
    { class: "setup-body", novalidate: true, "data-testid": "setup-step" },
    title,
    lead,
    content,
    alert,
    actions,
  );
  const page = h(
    "main",
    { class: "setup-page", "data-testid": "setup-page" },
    h(
      "div",
      { class: "setup-card" },
      h(
        "div",
        { class: "setup-head" },
        h(
          "div",
          { class: "auth-brand" },
          icon("logo", "logo"),
          h("span", { class: "brand-name" }, "Appliance"),
        ),
        h("span", { class: "badge" }, "Set-up"),
      ),
      progress,
      form,
    ),
  );

  // -- fields ---------------------------------------------------------------------------------
  function field(
    key: string,
    label: string,
    control: Control,
    hint?: string | Node,
  ): HTMLElement {
    const id = `setup-${key.replace(/[^a-z0-9]+/gi, "-")}`;
    control.id = id;
    const error = h("p", {
      class: "field-error",
      id: `${id}-error`,
      "data-testid": "field-error",
      "data-field": key,
      hidden: true,
    });
    const hintEl = hint ? h("p", { class: "field-hint", id: `${id}-hint` }, hint) : null;
    control.setAttribute("aria-describedby", [hintEl ? `${id}-hint` : "", `${id}-error`].join(" ").trim());
    controls.set(key, { control, error });
    return h(
      "div",
      { class: "field", "data-field": key },
      h("label", { for: id, class: "label" }, label),
      control,
      hintEl,
      error,
    );
  }

  function textInput(value: string, attrs: Record<string, string | number | boolean> = {}): HTMLInputElement {
    const input = h("input", { type: "text", class: "input", spellcheck: "false", ...attrs });
    input.value = value;
    return input;
  }

  function portInput(value: number | null | undefined): HTMLInputElement {
    return textInput(value === null || value === undefined ? "" : String(value), {
      inputmode: "numeric",
      autocomplete: "off",
      maxlength: 6,
      class: "input input-port",
    });
  }

  function choice(
    name: string,
    value: string,
    checked: boolean,
    heading: string,
    text: string,
  ): { label: HTMLElement; input: HTMLInputElement } {
    const input = h("input", { type: "radio", name, value, "data-testid": `choice-${value}` });
    input.checked = checked;
    const label = h(
      "label",
      { class: "choice" },
      input,
      h(
        "span",
        { class: "choice-body" },
        h("span", { class: "choice-title" }, heading),
        h("span", { class: "choice-text" }, text),
      ),
    );
    return { label, input };
  }

  function clearErrors(): void {
    alert.hidden = true;
    alertText.textContent = "";
    for (const { control, error } of controls.values()) {
      error.hidden = true;
      error.replaceChildren();
      control.removeAttribute("aria-invalid");
    }
  }

  function showAlert(message: string, kind: "alert" | "clock" = "alert"): void {
    alertIcon.replaceChildren(icon(kind));
    alert.className = `alert ${kind === "clock" ? "alert-warning" : "alert-error"}`;
    alertText.textContent = message;
    alert.hidden = false;
  }

  /** Put each message next to its field; the ones with no field on this screen go on top. */
  function showErrors(fields: Record<string, string>, fallback?: string): void {
    clearErrors();
    const loose: string[] = [];
    let first: Control | null = null;
    for (const [key, message] of Object.entries(fields)) {
      const target = controls.get(key);
      if (!target) {
        loose.push(sentence(`${key.split(".").pop() ?? key}: ${message}`));
        continue;
      }
      target.error.replaceChildren(
        h("span", { class: "field-error-icon" }, icon("alert")),
        h("span", {}, sentence(message)),
      );
      target.error.hidden = false;
      target.control.setAttribute("aria-invalid", "true");
      first ??= target.control;
    }
    if (loose.length) showAlert(loose.join(" "));
    else if (!first && fallback) showAlert(fallback);
    first?.focus();
  }

  // -- screens ----------------------------------------------------------------------------------
  function tokenScreen(): Screen {
    const input = textInput(token, {
      autocomplete: "off",
      autocapitalize: "none",
      autocorrect: "off",
      maxlength: 200,
      class: "input mono",
      "data-testid": "setup-token",
    });
    return {
      title: "Welcome! Let's set up your appliance",
      lead: "A few questions and your team can chat and call. It takes about five minutes.",
      body: [
        field(
          "token",
          "Set-up token",
          input,
          "The installer printed it at the end. On the box it is also in the file " +
            "setup-token in the data directory.",
        ),
      ],
      collect: (): Record<string, string> => {
        token = input.value.trim();
        return token ? {} : { token: "enter the set-up token" };
      },
      focus: input,
    };
  }

  function organisationScreen(): Screen {
    const input = textInput(draft.organisation?.name ?? "", {
      maxlength: 80,
      autocomplete: "organization",
      spellcheck: "true",
    });
    return {
      title: "What is your organisation called?",
      lead: "People see this name when they sign in.",
      body: [field("organisation.name", "Organisation name", input, "For example: Riverside Clinic")],
      collect: () => {
        draft.organisation = { name: input.value };
        return {};
      },
      focus: input,
    };
  }

  function adminScreen(): Screen {
    const min = env?.password_min_length ?? 8;
    const username = textInput(draft.admin?.username ?? "", {
      maxlength: 64,
      autocomplete: "username",
      autocapitalize: "none",
      autocorrect: "off",
    });
    const password = h("input", {
      type: "password",
      class: "input",
      autocomplete: "new-password",
      maxlength: 1024,
    });
    password.value = draft.admin?.password ?? "";
    const confirm = h("input", {
      type: "password",
      class: "input",
      autocomplete: "new-password",
      maxlength: 1024,
    });
    confirm.value = confirmPassword;
    return {
      title: "Create the first administrator",
      lead: "This is the account you will sign in with. Administrators can add everyone else.",
      body: [
        field("admin.username", "Username", username, "Letters, digits, '.', '_' or '-'."),
        field("admin.password", "Password", password, `At least ${min} characters.`),
        field("admin.confirm", "Password again", confirm),
      ],
      collect: (): Record<string, string> => {
        draft.admin = { username: username.value.trim(), password: password.value };
        confirmPassword = confirm.value;
        return password.value && confirm.value !== password.value
          ? { "admin.confirm": "the two passwords differ" }
          : {};
      },
      focus: username,
    };
  }

  function stunPanel(): HTMLElement {
    const panel = h("div", { class: "stun-panel", "data-testid": "stun-report" });
    const render = (): void => {
      if (stunReport === null || stunReport === "loading") {
        panel.dataset.state = "loading";
        panel.replaceChildren(
          h(
            "div",
            { class: "alert alert-info" },
            h("span", { class: "spinner alert-icon", "aria-hidden": "true" }),
            h("span", { class: "alert-text" }, "Checking how the internet sees this box…"),
          ),
        );
        return;
      }
      if (stunReport === "failed") {
        panel.dataset.state = "failed";
        panel.replaceChildren(
          h(
            "div",
            { class: "alert alert-warning" },
            h("span", { class: "alert-icon" }, icon("info")),
            h("span", { class: "alert-text" }, "The check could not run. You can go on."),
          ),
        );
        return;
      }
      const report = stunReport;
      panel.dataset.state = report.configured ? report.needs_relay : "not-configured";
      const facts = report.public_address
        ? h(
            "p",
            { class: "stun-facts" },
            "Public address ",
            h("strong", { class: "mono" }, report.public_address),
            report.nat_type ? ` · NAT type: ${report.nat_type}` : "",
          )
        : null;
      const warn = report.needs_relay === "yes";
      panel.replaceChildren(
        h(
          "div",
          { class: `alert ${warn ? "alert-warning" : "alert-info"}` },
          h("span", { class: "alert-icon" }, icon(warn ? "alert" : "info")),
          h("span", { class: "alert-text stun-text" }, facts, h("span", {}, report.verdict)),
        ),
      );
    };
    render();
    if (stunReport === null) {
      stunReport = "loading";
      setupApi
        .stun(token)
        .then((report) => {
          stunReport = report;
        })
        .catch(() => {
          stunReport = "failed";
        })
        .finally(() => {
          if (!disposed) render();
        });
    }
    return panel;
  }

  function reachScreen(): Screen {
    const current = draft.reach ?? { share_name: "", extra_names: [] };
    const extra = h("textarea", {
      class: "input textarea mono",
      rows: 3,
      spellcheck: "false",
      autocapitalize: "none",
      placeholder: "chat.example.org",
    });
    extra.value = current.extra_names.join("\n");
    const share = h("select", { class: "input select" });
    const extraNames = (): string[] =>
      extra.value
        .split(/[\s,]+/)
        .map((n) => n.trim())
        .filter(Boolean);
    const fillShare = (wanted: string): void => {
      const names = [...new Set([...(env?.share_names ?? []), ...extraNames()])];
      share.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
      share.value = names.includes(wanted) ? wanted : (names[0] ?? "");
    };
    fillShare(current.share_name);
    extra.addEventListener("input", () => fillShare(share.value));
    const detected = h(
      "div",
      { class: "field" },
      h("span", { class: "label" }, "This box answers to"),
      h(
        "div",
        { class: "chips", "data-testid": "detected-names" },
        ...(env?.covered_names ?? []).map((name) => h("span", { class: "chip mono" }, name)),
      ),
    );
    return {
      title: "How will people reach the appliance?",
      lead: "These names and addresses were found on this box. Its certificate covers all of them.",
      body: [
        detected,
        field(
          "reach.extra_names",
          "Extra names (optional)",
          extra,
          "Other DNS names or IP addresses that lead to this box, one per line. " +
            "They are added to the certificate.",
        ),
        field("reach.share_name", "Address to share with your team", share),
        h(
          "div",
          { class: "field" },
          h("span", { class: "label" }, "Calls from other networks"),
          stunPanel(),
        ),
      ],
      collect: () => {
        draft.reach = { share_name: share.value, extra_names: extraNames() };
        return {};
      },
      focus: share,
    };
  }

  function pemField(key: "cert_pem" | "key_pem", label: string, value: string): HTMLElement {
    const area = h("textarea", {
      class: "input textarea mono",
      rows: 4,
      spellcheck: "false",
      placeholder: key === "cert_pem" ? "-----BEGIN CERTIFICATE-----" : "-----BEGIN PRIVATE KEY-----",
      "data-testid": `tls-${key}`,
    });
    area.value = value;
    const file = h("input", {
      type: "file",
      accept: ".pem,.crt,.cer,.key,text/plain",
      class: "visually-hidden",
      "data-testid": `tls-${key}-file`,
    });
    file.addEventListener("change", () => {
      const chosen = file.files?.[0];
      if (chosen) void chosen.text().then((text) => (area.value = text));
    });
    const pick = h(
      "button",
      { type: "button", class: "btn btn-secondary btn-sm", onclick: () => file.click() },
      "Choose file…",
    );
    const wrap = field(`tls.${key}`, label, area);
    wrap.querySelector("label")?.after(h("div", { class: "file-row" }, pick, file));
    return wrap;
  }

  function tlsScreen(): Screen {
    const mode = draft.tls?.mode ?? "internal";
    const internal = choice(
      "tls-mode",
      "internal",
      mode === "internal",
      "Use the appliance's own certificate (recommended)",
      "Best on a local network. Each device trusts the appliance once, from its /trust page.",
    );
    const upload = choice(
      "tls-mode",
      "upload",
      mode === "upload",
      "Upload a certificate",
      "A certificate for the address you share, from a public or company authority, with its private key.",
    );
    const files = h(
      "div",
      { class: "setup-sub" },
      pemField("cert_pem", "Certificate chain (PEM)", draft.tls?.cert_pem ?? ""),
      pemField("key_pem", "Private key (PEM, without password)", draft.tls?.key_pem ?? ""),
    );
    const sync = (): void => {
      files.hidden = !upload.input.checked;
    };
    internal.input.addEventListener("change", sync);
    upload.input.addEventListener("change", sync);
    sync();
    return {
      title: "Secure connection",
      lead: "Browsers allow cameras and microphones only over HTTPS, so the appliance needs a certificate.",
      body: [h("div", { class: "choice-list", role: "radiogroup" }, internal.label, upload.label), files],
      collect: () => {
        if (upload.input.checked) {
          const cert = controls.get("tls.cert_pem")?.control.value ?? "";
          const key = controls.get("tls.key_pem")?.control.value ?? "";
          draft.tls = { mode: "upload", cert_pem: cert, key_pem: key };
        } else {
          draft.tls = { mode: "internal" };
        }
        return {};
      },
      focus: mode === "upload" ? upload.input : internal.input,
    };
  }

  function turnScreen(): Screen {
    const t = draft.turn ?? { port: 3478, tls_port: 5349, min_port: 49160, max_port: 49200 };
    const inputs = {
      port: portInput(t.port),
      tls_port: portInput(t.tls_port),
      min_port: portInput(t.min_port),
      max_port: portInput(t.max_port),
    };
    const tableSlot = h("div", { class: "field" });
    const read = (): { values: NonNullable<SetupDraft["turn"]>; bad: Record<string, string> } => {
      const bad: Record<string, string> = {};
      const values: NonNullable<SetupDraft["turn"]> = {
        port: null,
        tls_port: null,
        min_port: null,
        max_port: null,
      };
      for (const key of ["port", "tls_port", "min_port", "max_port"] as const) {
        const parsed = parsePort(inputs[key].value);
        if (parsed === "bad") bad[`turn.${key}`] = "enter a whole number";
        else values[key] = parsed;
      }
      return { values, bad };
    };
    const redraw = (): void => {
      const web = env?.web ?? { port: 8080, https_port: 8443 };
      tableSlot.replaceChildren(
        h("span", { class: "label" }, "Open or forward these ports to this box"),
        firewallTable(firewallRules(web, read().values)),
      );
    };
    for (const input of Object.values(inputs)) input.addEventListener("input", redraw);
    redraw();
    return {
      title: "Calls across networks",
      lead:
        "When two people cannot reach each other directly, the appliance relays the call " +
        "(TURN). These are its ports.",
      body: [
        h(
          "div",
          { class: "field-grid" },
          field("turn.port", "TURN port", inputs.port),
          field("turn.tls_port", "TURN over TLS port", inputs.tls_port),
          field("turn.min_port", "First relay port", inputs.min_port),
          field("turn.max_port", "Last relay port", inputs.max_port),
        ),
        tableSlot,
      ],
      collect: () => {
        const { values, bad } = read();
        draft.turn = values;
        return bad;
      },
      focus: inputs.port,
    };
  }

  function storageScreen(): Screen {
    const s = draft.storage ?? { mode: "managed" };
    const managed = choice(
      "storage-mode",
      "managed",
      s.mode === "managed",
      "On this box (recommended)",
      "Shared files are kept in the appliance's data directory.",
    );
    const external = choice(
      "storage-mode",
      "external",
      s.mode === "external",
      "An external S3 service",
      "For example MinIO, Garage, or a cloud provider's S3-compatible storage.",
    );
    const endpoint = textInput(s.endpoint ?? "", {
      maxlength: 2048,
      autocapitalize: "none",
      placeholder: "https://s3.example.org",
      inputmode: "url",
    });
    const bucket = textInput(s.bucket ?? "appliance-media", { maxlength: 63, autocapitalize: "none" });
    const region = textInput(s.region ?? "us-east-1", { maxlength: 64, autocapitalize: "none" });
    const accessKey = textInput(s.access_key ?? "", {
      maxlength: 256,
      autocomplete: "off",
      autocapitalize: "none",
    });
    const secretKey = h("input", {
      type: "password",
      class: "input",
      maxlength: 256,
      autocomplete: "off",
    });
    secretKey.value = s.secret_key ?? "";
    const fields = h(
      "div",
      { class: "setup-sub" },
      field("storage.endpoint", "Endpoint URL", endpoint),
      h(
        "div",
        { class: "field-grid" },
        field("storage.bucket", "Bucket", bucket),
        field("storage.region", "Region", region),
      ),
      field("storage.access_key", "Access key", accessKey),
      field(
        "storage.secret_key",
        "Secret key",
        secretKey,
        "When you press Next, the appliance uploads a small test file, reads it back and deletes it.",
      ),
    );
    const sync = (): void => {
      fields.hidden = !external.input.checked;
    };
    managed.input.addEventListener("change", sync);
    external.input.addEventListener("change", sync);
    sync();
    return {
      title: "Where should shared files go?",
      lead: "Pictures, documents and recordings people share in chats.",
      body: [h("div", { class: "choice-list", role: "radiogroup" }, managed.label, external.label), fields],
      collect: () => {
        draft.storage = external.input.checked
          ? {
              mode: "external",
              endpoint: endpoint.value.trim(),
              bucket: bucket.value.trim(),
              region: region.value.trim(),
              access_key: accessKey.value.trim(),
              secret_key: secretKey.value,
            }
          : { mode: "managed" };
        return {};
      },
      focus: s.mode === "external" ? external.input : managed.input,
    };
  }

  function recordingScreen(): Screen {
    const r = draft.recording ?? { enabled: false, retention_days: 30 };
    const enabled = h("input", {
      type: "checkbox",
      id: "setup-recording-enabled",
      class: "checkbox",
      "data-testid": "recording-enabled",
    });
    enabled.checked = r.enabled;
    const days = portInput(r.retention_days);
    days.maxLength = 4;
    return {
      title: "Call recording",
      lead: "Choose whether calls may be recorded, and how long recordings are kept.",
      body: [
        h(
          "label",
          { class: "choice", for: "setup-recording-enabled" },
          enabled,
          h(
            "span",
            { class: "choice-body" },
            h("span", { class: "choice-title" }, "Allow call recording"),
            h(
              "span",
              { class: "choice-text" },
              "Saved now, and followed by the appliance's call recorder.",
            ),
          ),
        ),
        field(
          "recording.retention_days",
          "Keep recordings for (days)",
          days,
          "Older recordings are deleted.",
        ),
      ],
      collect: (): Record<string, string> => {
        const parsed = parsePort(days.value);
        draft.recording = { enabled: enabled.checked, retention_days: parsed === "bad" ? null : parsed };
        return parsed === "bad" ? { "recording.retention_days": "enter a whole number of days" } : {};
      },
      focus: enabled,
    };
  }

  function summaryRow(step: StepName, value: Node | string): HTMLElement {
    return h(
      "div",
      { class: "summary-row", "data-testid": "summary-row", "data-step": step },
      h("dt", {}, STEP_TITLES[step]),
      h("dd", {}, value),
      h(
        "button",
        {
          type: "button",
          class: "btn btn-ghost btn-sm summary-edit",
          "aria-label": `Change ${STEP_TITLES[step]}`,
          onclick: () => go(STEPS.indexOf(step) + 1),
        },
        "Change",
      ),
    );
  }

  function summaryScreen(): Screen {
    const t = draft.turn;
    const s = draft.storage;
    const r = draft.recording;
    const tls =
      draft.tls?.mode === "upload"
        ? `Uploaded certificate${certificate ? ` for ${certificate.names.join(", ")}` : ""}`
        : "The appliance's own certificate";
    return {
      title: "Ready to finish?",
      lead: "Check your answers. You can change any of them later in the configuration file.",
      body: [
        h(
          "dl",
          { class: "summary", "data-testid": "setup-summary" },
          summaryRow("organisation", draft.organisation?.name ?? ""),
          summaryRow("admin", draft.admin?.username ?? ""),
          summaryRow("reach", h("span", { class: "mono" }, draft.reach?.share_name ?? "")),
          summaryRow("tls", tls),
          summaryRow(
            "turn",
            t ? `Port ${t.port}, TLS ${t.tls_port}, relay ${t.min_port}-${t.max_port}` : "",
          ),
          summaryRow("storage", s?.mode === "external" ? `S3 at ${s.endpoint} (${s.bucket})` : "On this box"),
          summaryRow(
            "recording",
            r?.enabled
              ? `On, kept ${r.retention_days} days`
              : `Off (kept ${r?.retention_days} days if switched on)`,
          ),
        ),
      ],
    };
  }

  function doneScreen(): Screen {
    const done = result;
    if (!done) return alreadyDoneScreen();
    const url = h("input", {
      type: "text",
      class: "input mono",
      readonly: true,
      "aria-label": "Address to share",
      "data-testid": "share-url",
    });
    url.value = done.url;
    const copyLabel = h("span", {}, "Copy");
    const copy = h(
      "button",
      { type: "button", class: "btn btn-secondary", "data-testid": "copy-url" },
      icon("copy"),
      copyLabel,
    );
    copy.addEventListener("click", () => {
      url.select();
      void navigator.clipboard
        ?.writeText(done.url)
        .then(() => (copyLabel.textContent = "Copied"))
        .catch(() => undefined);
    });
    const qr = h("img", {
      class: "qr",
      alt: `QR code of ${done.url}`,
      width: 176,
      height: 176,
      "data-testid": "share-qr",
      src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(done.qr_svg)}`,
    });
    const trust = h(
      "a",
      {
        href: done.trust_url,
        class: "trust-link",
        "data-testid": "trust-link",
        target: "_blank",
        rel: "noopener",
      },
      icon("shield"),
      h("span", {}, "Open the trust page"),
    );
    return {
      title: "Your appliance is ready",
      lead: done.next_step,
      body: [
        h(
          "div",
          { class: "field" },
          h("span", { class: "label" }, "Share this address with your team"),
          h("div", { class: "share-row" }, url, copy),
        ),
        h(
          "div",
          { class: "done-grid" },
          qr,
          h(
            "div",
            { class: "done-text" },
            h("p", {}, "Phones can scan the code to open the appliance."),
            h(
              "p",
              {},
              draft.tls?.mode === "upload"
                ? "Devices that do not know your certificate's authority can get help on the trust page."
                : "Each device trusts the appliance's certificate once, from the trust page. " +
                  "It has short instructions for every platform.",
            ),
            trust,
          ),
        ),
        h(
          "details",
          { class: "firewall-details" },
          h("summary", {}, "Ports to open in your firewall"),
          firewallTable(done.firewall),
        ),
      ],
    };
  }

  function alreadyDoneScreen(): Screen {
    return {
      title: "Set-up is already finished",
      lead:
        "Someone completed the set-up, perhaps in another browser. " +
        "Sign in with the administrator account.",
      body: [],
    };
  }

  function screenFor(i: number): Screen {
    if (i === 0) return tokenScreen();
    if (i === 8) return summaryScreen();
    if (i === 9) return doneScreen();
    if (i < 0) return alreadyDoneScreen();
    switch (STEPS[i - 1]) {
      case "organisation":
        return organisationScreen();
      case "admin":
        return adminScreen();
      case "reach":
        return reachScreen();
      case "tls":
        return tlsScreen();
      case "turn":
        return turnScreen();
      case "storage":
        return storageScreen();
      default:
        return recordingScreen();
    }
  }

  let screen: Screen = screenFor(0);

  function render(): void {
    controls.clear();
    window.clearInterval(countdown);
    screen = screenFor(index);
    const over = index >= 9 || index < 0;
    const step =
      index >= 1 && index <= 7
        ? STEPS[index - 1]
        : index === 0
          ? "token"
          : index === 8
            ? "summary"
            : "done";
    form.dataset.step = step;
    title.replaceChildren(
      ...(index === 9 ? [h("span", { class: "done-icon" }, icon("checkCircle"))] : []),
      screen.title,
    );
    lead.textContent = screen.lead;
    lead.hidden = !screen.lead;
    content.replaceChildren(...screen.body);
    clearErrors();
    const inSteps = index >= 1 && index <= 8;
    progress.hidden = !inSteps;
    if (inSteps) {
      const n = Math.min(index, 7);
      progressText.textContent = index === 8 ? "Summary" : `Step ${n} of 7`;
      progressName.textContent = index === 8 ? "" : STEP_TITLES[STEPS[n - 1]];
      progressFill.style.width = `${Math.round((index / 8) * 100)}%`;
    }
    back.hidden = index <= 1 || index >= 9 || index < 0;
    nextLabel.textContent =
      index === 0 ? "Continue" : index === 8 ? "Finish set-up" : over ? "Go to sign in" : "Next";
    next.dataset.testid = index === 8 ? "setup-finish" : over ? "setup-signin" : "setup-next";
    document.title = `${index === 9 ? "Ready" : "Set-up"} · Appliance`;
    window.scrollTo({ top: 0 });
    if (pendingErrors) {
      showErrors(pendingErrors);
      pendingErrors = null;
    } else {
      screen.focus?.focus();
    }
  }

  function go(i: number): void {
    index = i;
    render();
  }

  function setBusy(value: boolean): void {
    busy = value;
    next.classList.toggle("is-busy", value);
    next.setAttribute("aria-busy", String(value));
    next.disabled = value;
    back.disabled = value;
  }

  function startCountdown(seconds: number): void {
    window.clearInterval(countdown);
    const until = Date.now() + seconds * 1000;
    const tick = (): void => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        window.clearInterval(countdown);
        showAlert("You can try again now.", "clock");
      } else {
        showAlert(`Too many wrong tokens. Try again in ${left} seconds.`, "clock");
      }
    };
    tick();
    countdown = window.setInterval(tick, 1000);
  }

  /** Errors every request can meet; false if the caller should look at it itself. */
  function handleCommon(err: unknown): boolean {
    if (err instanceof ApiError && err.code === "not_found" && index !== 0 && err.status === 404) {
      go(-1);
      return true;
    }
    if (err instanceof ApiError && err.code === "rate_limited") {
      startCountdown(err.retryAfter ?? 30);
      return true;
    }
    if (err instanceof ApiError && err.status === 401) {
      if (index !== 0) go(0);
      showErrors({ token: "this token is not right; check it and try again" });
      return true;
    }
    if (err instanceof NetworkError) {
      showAlert(MESSAGES.unreachable);
      return true;
    }
    if (err instanceof ApiError && err.status >= 500) {
      showAlert(sentence(err.message));
      return true;
    }
    return false;
  }

  /** The first screen (step index) that holds one of these fields. */
  function screenOf(fields: Record<string, string>): number {
    for (const key of Object.keys(fields)) {
      const step = key.split(".")[0] as StepName;
      const at = STEPS.indexOf(step);
      if (at >= 0) return at + 1;
    }
    return 8;
  }

  async function onNext(event: Event): Promise<void> {
    event.preventDefault();
    if (busy) return;
    if (index >= 9 || index < 0) {
      options.onDone();
      return;
    }
    clearErrors();
    const local = screen.collect?.() ?? {};
    if (Object.keys(local).length) {
      showErrors(local);
      return;
    }
    setBusy(true);
    try {
      if (index === 0) {
        const info = await setupApi.checkToken(token);
        if (!info.setup_pending) {
          go(-1);
          return;
        }
        if (!env) {
          env = await setupApi.environment(token);
          draft = { ...env.defaults, ...draft };
        }
        go(1);
      } else if (index <= 7) {
        const step = STEPS[index - 1];
        const body: SetupDraft = { [step]: draft[step] };
        if (step === "tls") body.reach = draft.reach;
        const report = await setupApi.validateStep(token, step, body);
        if (step === "tls") certificate = report.certificate;
        go(index + 1);
      } else {
        result = await setupApi.finish(token, draft as SetupPlan);
        go(9);
      }
    } catch (err) {
      if (err instanceof ApiError && err.code === "not_found" && index === 0) {
        go(-1);
      } else if (!handleCommon(err)) {
        if (err instanceof ApiError && err.status === 400) {
          const fields = Object.keys(err.fields).length ? err.fields : null;
          if (index === 8 && fields) {
            pendingErrors = fields;
            go(screenOf(fields));
          } else {
            showErrors(fields ?? {}, sentence(err.message));
          }
        } else {
          console.error(err);
          showAlert("Something went wrong on the server. Try again in a moment.");
        }
      }
    } finally {
      setBusy(false);
    }
  }

  form.addEventListener("submit", (event) => void onNext(event));
  back.addEventListener("click", () => {
    if (!busy && index > 1) go(index - 1);
  });
  root.replaceChildren(page);
  render();

  return () => {
    disposed = true;
    window.clearInterval(countdown);
  };
}
