// The admin API (docs/protocol.md, "Administration"): people, invitation links and the doctor's
// report. Plain functions of the session; every call refreshes an expired token once (authed).
// Non-admins get 403 forbidden from all of these.

import { request } from "./api.ts";
import type { Session } from "./session.ts";

/** A server timestamp: unix seconds (what the API sends), or an ISO string (tolerated). */
export type Timestamp = number | string;

export interface AdminUser {
  user_id: number;
  username: string;
  is_admin: boolean;
  disabled: boolean;
  must_change_password: boolean;
  online: boolean;
  last_seen: Timestamp | null;
  created_at: Timestamp | null;
}

export type InvitationState = "active" | "expired" | "used_up" | "revoked";

export interface Invitation {
  id: number | string;
  max_uses: number;
  uses: number;
  expires_at: Timestamp;
  is_admin: boolean;
  note: string;
  created_at: Timestamp;
  created_by: { user_id: number; username: string } | null;
  state: InvitationState;
}

/** The answer to creating one: the only time the token and link are shown. */
export interface NewInvitation extends Invitation {
  token: string;
  url: string;
}

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  summary: string;
  /** Plain-language advice; "" when the check passed. */
  fix: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export interface NewUser {
  username: string;
  password: string;
  is_admin: boolean;
  must_change_password: boolean;
}

export interface NewInvitationRequest {
  max_uses: number;
  /** Seconds from now. */
  expires_in: number;
  is_admin: boolean;
  note: string;
}

/** Limits of POST /api/admin/invitations. */
export const INVITATION_LIMITS = {
  minUses: 1,
  maxUses: 1000,
  minExpiresIn: 300,
  maxExpiresIn: 7_776_000,
  maxNote: 200,
} as const;

/** A timestamp as unix seconds (null when absent or unreadable). */
export function seconds(value: Timestamp | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

const userPath = (id: number): string => `/api/admin/users/${encodeURIComponent(String(id))}`;

export async function listUsers(session: Session, signal?: AbortSignal): Promise<AdminUser[]> {
  const answer = await session.authed((token) =>
    request<{ users: AdminUser[] }>("GET", "/api/admin/users", { token, signal }),
  );
  return answer.users;
}

export async function createUser(session: Session, user: NewUser): Promise<AdminUser> {
  const answer = await session.authed((token) =>
    request<{ user: AdminUser }>("POST", "/api/admin/users", { token, body: user }),
  );
  return answer.user;
}

export async function updateUser(
  session: Session,
  userId: number,
  change: { disabled?: boolean; is_admin?: boolean },
): Promise<AdminUser> {
  const answer = await session.authed((token) =>
    request<{ user: AdminUser }>("PATCH", userPath(userId), { token, body: change }),
  );
  return answer.user;
}

export function resetPassword(session: Session, userId: number, password: string): Promise<void> {
  return session.authed((token) =>
    request<void>("POST", `${userPath(userId)}/password`, { token, body: { password } }),
  );
}

export function deleteUser(session: Session, userId: number): Promise<void> {
  return session.authed((token) => request<void>("DELETE", userPath(userId), { token }));
}

export async function listInvitations(
  session: Session,
  signal?: AbortSignal,
): Promise<Invitation[]> {
  const answer = await session.authed((token) =>
    request<{ invitations: Invitation[] }>("GET", "/api/admin/invitations", { token, signal }),
  );
  return answer.invitations;
}

export async function createInvitation(
  session: Session,
  invitation: NewInvitationRequest,
): Promise<NewInvitation> {
  const answer = await session.authed((token) =>
    request<{ invitation: NewInvitation }>("POST", "/api/admin/invitations", {
      token,
      body: invitation,
    }),
  );
  return answer.invitation;
}

export function revokeInvitation(session: Session, id: number | string): Promise<void> {
  return session.authed((token) =>
    request<void>("DELETE", `/api/admin/invitations/${encodeURIComponent(String(id))}`, { token }),
  );
}

export function doctor(session: Session, signal?: AbortSignal): Promise<DoctorReport> {
  return session.authed((token) =>
    request<DoctorReport>("GET", "/api/admin/doctor", { token, signal }),
  );
}
