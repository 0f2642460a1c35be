// The first-run set-up wizard's API (docs/setup.md) and `GET /api/site`.

import { request } from "./api.ts";

export interface SiteInfo {
  name: string;
  setup_pending: boolean;
  /** Whether calls may be recorded on this appliance (older servers leave it out). */
  recording_enabled?: boolean;
}

export const STEPS = [
  "organisation",
  "admin",
  "reach",
  "tls",
  "turn",
  "storage",
  "recording",
] as const;
export type StepName = (typeof STEPS)[number];

export interface SetupDraft {
  organisation?: { name: string };
  admin?: { username: string; password: string };
  reach?: { share_name: string; extra_names: string[] };
  tls?: { mode: "internal" | "upload"; cert_pem?: string; key_pem?: string };
  turn?: {
    port: number | null;
    tls_port: number | null;
    min_port: number | null;
    max_port: number | null;
  };
  storage?: {
    mode: "managed" | "external";
    endpoint?: string;
    bucket?: string;
    region?: string;
    access_key?: string;
    secret_key?: string;
  };
  recording?: { enabled: boolean; retention_days: number | null };
}

export type SetupPlan = Required<SetupDraft>;

export interface FirewallRule {
  ports: string;
  protocol: string;
  purpose: string;
}

export interface CertificateSummary {
  names: string[];
  not_after: string;
  issuer: string;
  self_signed: boolean;
}

export interface StepReport {
  ok: boolean;
  firewall: FirewallRule[] | null;
  certificate: CertificateSummary | null;
}

export interface Environment {
  hostname: string;
  mdns_name: string;
  addresses: string[];
  covered_names: string[];
  share_names: string[];
  web: { port: number; https_port: number };
  stun_configured: boolean;
  password_min_length: number;
  defaults: SetupDraft;
}

export interface StunReport {
  configured: boolean;
  servers: string[];
  public_address: string | null;
  public_port: number | null;
  nat_type: string | null;
  needs_relay: "no" | "sometimes" | "yes" | "unknown";
  verdict: string;
}

export interface FinishResult {
  url: string;
  trust_url: string;
  qr_svg: string;
  firewall: FirewallRule[];
  restart: string;
  next_step: string;
}

export function site(): Promise<SiteInfo> {
  return request("GET", "/api/site");
}

export function checkToken(setupToken: string): Promise<SiteInfo> {
  return request("POST", "/api/setup/token", { setupToken });
}

export function environment(setupToken: string): Promise<Environment> {
  return request("GET", "/api/setup/environment", { setupToken });
}

export function stun(setupToken: string): Promise<StunReport> {
  return request("GET", "/api/setup/stun", { setupToken });
}

export function validateStep(
  setupToken: string,
  step: StepName,
  draft: SetupDraft,
): Promise<StepReport> {
  return request("POST", `/api/setup/validate/${step}`, { setupToken, body: draft });
}

export function finish(setupToken: string, plan: SetupPlan): Promise<FinishResult> {
  return request("POST", "/api/setup/finish", { setupToken, body: plan });
}
