"""Invitation links: an admin makes one; whoever opens it picks a name and a password and is in.

A token is 128 random bits (URL-safe base64), handed out once and stored only as its SHA-256.
Signups through links and failed link checks are limited per client address
(`auth.invitation_signups_per_hour`); the counters live in this process behind
`SignupCounter`, which a shared store could replace for several workers.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.auth import AuthService, TokenPair
from appliance.services.clock import Clock
from appliance.services.passwords import PasswordService
from appliance.storage.invitations import (
    InvitationRecord,
    InvitationRepository,
    InvitationUnusable,
)
from appliance.storage.users import UsernameTaken, UserRepository

log = logging.getLogger(__name__)

WINDOW = 3600.0
TOKEN_BYTES = 16
_STATE_ERRORS: dict[str, tuple[ErrorCode, str]] = {
    "expired": (ErrorCode.INVITATION_EXPIRED, "this invitation link has expired"),
    "used_up": (ErrorCode.INVITATION_USED_UP, "this invitation link has been used up"),
    "revoked": (ErrorCode.INVITATION_REVOKED, "this invitation link has been revoked"),
}


def _state_error(state: str) -> AppError:
    code, message = _STATE_ERRORS.get(state, _STATE_ERRORS["used_up"])
    return AppError(code, message)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SignupCounter:
    """Events per client address in the last `window` seconds (in this process)."""

    def __init__(self, limit: int, clock: Clock, window: float = WINDOW) -> None:
        self._limit = limit
        self._clock = clock
        self._window = window
        self._events: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        events = self._events.setdefault(client, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        return events

    def check(self, client: str) -> None:
        now = self._clock()
        events = self._recent(client, now)
        if len(events) >= self._limit:
            raise AppError(
                ErrorCode.RATE_LIMITED,
                "too many sign-ups or invalid links from this address; try again later",
                retry_after=max(0.0, events[0] + self._window - now),
            )

    def count(self, client: str) -> None:
        now = self._clock()
        self._recent(client, now).append(now)
        # Forget addresses with nothing recent, so the map cannot grow without bound.
        for key in [k for k, v in self._events.items() if not v or v[-1] <= now - self._window]:
            del self._events[key]


@dataclass(frozen=True, slots=True)
class NewInvitation:
    record: InvitationRecord
    token: str


class InvitationService:
    def __init__(
        self,
        config: AuthConfig,
        invitations: InvitationRepository,
        users: UserRepository,
        auth: AuthService,
        passwords: PasswordService,
        clock: Clock,
    ) -> None:
        self._invitations = invitations
        self._users = users
        self._auth = auth
        self._passwords = passwords
        self._clock = clock
        self._counter = SignupCounter(config.invitation_signups_per_hour, clock)

    def now(self) -> float:
        return self._clock()

    # -- admin side -----------------------------------------------------------------------

    async def create(
        self, admin_id: int, *, max_uses: int, expires_in: int, is_admin: bool, note: str
    ) -> NewInvitation:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        record = await self._invitations.create(
            hash_token(token),
            max_uses=max_uses,
            expires_at=now + expires_in,
            is_admin=is_admin,
            note=note,
            created_by=admin_id,
            now=now,
        )
        log.info("invitation %s created by user %s", record.id, admin_id)
        return NewInvitation(record, token)

    async def list_all(self) -> list[InvitationRecord]:
        return await self._invitations.list_all()

    async def revoke(self, invitation_id: int) -> None:
        if not await self._invitations.revoke(invitation_id, self._clock()):
            raise AppError(ErrorCode.NOT_FOUND, "no such invitation")

    # -- the invited person's side --------------------------------------------------------

    async def _usable(self, token: str, client: str) -> InvitationRecord:
        """The link's record if it can be used now; else its error, counted for `client`."""
        self._counter.check(client)
        record = None
        if token.isascii():
            record = await self._invitations.by_hash(hash_token(token))
        if record is None:
            self._counter.count(client)
            raise AppError(ErrorCode.INVITATION_INVALID, "this invitation link is not valid")
        state = record.state(self._clock())
        if state != "active":
            self._counter.count(client)
            raise _state_error(state)
        return record

    async def check(self, token: str, client: str) -> InvitationRecord:
        return await self._usable(token, client)

    async def accept(
        self, token: str, username: str, password: str, client: str, user_agent: str = ""
    ) -> TokenPair:
        record = await self._usable(token, client)
        self._auth.validate_username(username)
        self._auth.validate_new_password(password, username)
        if await self._users.by_username(username) is not None:
            raise AppError(ErrorCode.CONFLICT, f"user {username!r} already exists")
        password_hash = await self._passwords.hash(password)
        try:
            user = await self._invitations.accept(
                record.id, username, password_hash, is_admin=record.is_admin, now=self._clock()
            )
        except UsernameTaken:
            raise AppError(ErrorCode.CONFLICT, f"user {username!r} already exists") from None
        except InvitationUnusable:
            self._counter.count(client)
            fresh = await self._invitations.get(record.id)
            state = fresh.state(self._clock()) if fresh is not None else "revoked"
            raise _state_error(state) from None
        self._counter.count(client)
        log.info("user %s joined through invitation %s", user.id, record.id)
        return await self._auth.start_login(user, client, user_agent)
