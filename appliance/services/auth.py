"""Accounts, login, token rotation and revocation."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.clock import Clock
from appliance.services.password_policy import PasswordPolicy
from appliance.services.passwords import PasswordService
from appliance.services.throttle import LoginThrottle
from appliance.services.tokens import TokenClaims, TokenCodec, TokenType
from appliance.storage.tokens import TokenRepository
from appliance.storage.users import UsernameTaken, UserRecord, UserRepository

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
USERNAME_RULE = (
    "username must be 1-32 letters, digits, '.', '_' or '-', starting with a letter or digit"
)
USER_AGENT_MAX = 256

UserCloseListener = Callable[[int, ErrorCode, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is behind an access token, as the server knows them now."""

    user_id: int
    username: str
    is_admin: bool
    token: TokenClaims
    must_change_password: bool = False


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    access: TokenClaims
    must_change_password: bool = False


class AuthService:
    def __init__(
        self,
        config: AuthConfig,
        users: UserRepository,
        tokens: TokenRepository,
        passwords: PasswordService,
        codec: TokenCodec,
        throttle: LoginThrottle,
        clock: Clock,
    ) -> None:
        self._config = config
        self._users = users
        self._tokens = tokens
        self._passwords = passwords
        self._codec = codec
        self._throttle = throttle
        self._clock = clock
        self._revocation_listeners: list[Callable[[str], Awaitable[None]]] = []
        self._user_close_listeners: list[UserCloseListener] = []
        self.policy = PasswordPolicy(
            config.password_min_length, check_common=config.password_check_common
        )

    def on_family_revoked(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Call `listener(family_id)` whenever a login's tokens are revoked."""
        self._revocation_listeners.append(listener)

    def on_user_closed(self, listener: UserCloseListener) -> None:
        """Call `listener(user_id, reason, message)` when every socket of a user must end now
        (account disabled or deleted)."""
        self._user_close_listeners.append(listener)

    async def _revoke_family(self, family: str) -> None:
        await self._tokens.revoke_family(family, self._clock())
        for listener in self._revocation_listeners:
            await listener(family)

    async def revoke_user_logins(self, user_id: int, *, except_family: str | None = None) -> None:
        """End every login of the user but `except_family`; their sockets get `token_revoked`."""
        families = await self._tokens.revoke_user(
            user_id, self._clock(), except_family=except_family
        )
        for family in families:
            for listener in self._revocation_listeners:
                await listener(family)

    async def close_user(self, user_id: int, reason: ErrorCode, message: str) -> None:
        """End every login of the user, and close their open sockets with `reason`."""
        for listener in self._user_close_listeners:
            await listener(user_id, reason, message)
        await self._tokens.revoke_user(user_id, self._clock())

    async def revoke_login(self, family: str) -> None:
        await self._revoke_family(family)

    # -- accounts -------------------------------------------------------------------------

    def validate_new_password(self, password: str, username: str = "") -> None:
        """The password policy (`password_policy.py`): `weak_password` or `invalid_request`."""
        self.policy.check(password, username)

    @staticmethod
    def validate_username(username: str) -> None:
        if not USERNAME_PATTERN.match(username):
            raise AppError(ErrorCode.INVALID_REQUEST, USERNAME_RULE)

    async def create_user(
        self, username: str, password: str, *, is_admin: bool, must_change_password: bool = False
    ) -> UserRecord:
        self.validate_username(username)
        self.validate_new_password(password, username)
        password_hash = await self._passwords.hash(password)
        try:
            return await self._users.create(
                username,
                password_hash,
                is_admin=is_admin,
                now=self._clock(),
                must_change_password=must_change_password,
            )
        except UsernameTaken:
            raise AppError(ErrorCode.CONFLICT, f"user {username!r} already exists") from None

    async def set_password(self, user: UserRecord, password: str, *, must_change: bool) -> None:
        """A new password (policy applied) set by an admin; every login of the user ends."""
        self.validate_new_password(password, user.username)
        password_hash = await self._passwords.hash(password)
        await self._users.update_password(user.id, password_hash, must_change_password=must_change)
        await self.revoke_user_logins(user.id)

    # -- tokens ---------------------------------------------------------------------------

    async def start_login(self, user: UserRecord, client: str, user_agent: str = "") -> TokenPair:
        """A new login (refresh-token family) for `user`, recorded for their sessions list."""
        family = secrets.token_urlsafe(12)
        access, access_claims = self._codec.issue(TokenType.ACCESS, user.id, family)
        refresh, refresh_claims = self._codec.issue(TokenType.REFRESH, user.id, family)
        await self._tokens.start_login(
            refresh_claims.jti,
            family,
            user.id,
            refresh_claims.issued_at,
            refresh_claims.expires_at,
            client_address=client[:USER_AGENT_MAX],
            user_agent=user_agent[:USER_AGENT_MAX],
        )
        return TokenPair(
            access,
            refresh,
            self._config.access_ttl,
            access_claims,
            must_change_password=user.must_change_password,
        )

    async def login(
        self, username: str, password: str, client: str, user_agent: str = ""
    ) -> TokenPair:
        await self._throttle.check(username, client)
        user = await self._users.by_username(username)
        ok = await self._passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._throttle.failed(username, client)
            raise AppError(ErrorCode.INVALID_CREDENTIALS, "wrong username or password")
        await self._throttle.succeeded(username)
        if user.disabled:  # told only to someone who knows the password
            raise AppError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
        if self._passwords.needs_rehash(user.password_hash):
            await self._users.update_password(user.id, await self._passwords.hash(password))
        return await self.start_login(user, client, user_agent)

    async def refresh(self, refresh_token: str) -> TokenPair:
        claims = self._codec.decode(refresh_token, TokenType.REFRESH)
        record = await self._tokens.get_refresh(claims.jti)
        if record is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "refresh token is not known")
        user = await self._users.by_id(record.user_id)
        if user is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "account no longer exists")
        if user.disabled:
            raise AppError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
        if record.revoked_at is not None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "refresh token has been revoked")
        access, access_claims = self._codec.issue(
            TokenType.ACCESS, record.user_id, record.family_id
        )
        new_refresh, new_refresh_claims = self._codec.issue(
            TokenType.REFRESH, record.user_id, record.family_id
        )
        rotated = await self._tokens.rotate(
            record.jti,
            new_refresh_claims.jti,
            record.family_id,
            record.user_id,
            self._clock(),
            new_refresh_claims.expires_at,
        )
        if not rotated:
            # An already-rotated token came back: someone holds a copy. End the whole login.
            await self._revoke_family(record.family_id)
            raise AppError(
                ErrorCode.TOKEN_REUSED, "refresh token was already used; the session is revoked"
            )
        return TokenPair(
            access,
            new_refresh,
            self._config.access_ttl,
            access_claims,
            must_change_password=user.must_change_password,
        )

    async def authenticate(self, access_token: object) -> Principal:
        claims = self._codec.decode(access_token, TokenType.ACCESS)
        if await self._tokens.family_revoked(claims.family):
            raise AppError(ErrorCode.TOKEN_REVOKED, "token has been revoked")
        user = await self._users.by_id(claims.user_id)
        if user is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "account no longer exists")
        if user.disabled:
            raise AppError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
        return Principal(
            user.id,
            user.username,
            user.is_admin,
            claims,
            must_change_password=user.must_change_password,
        )

    async def logout(self, principal: Principal) -> None:
        await self._revoke_family(principal.token.family)

    async def prune(self) -> None:
        await self._tokens.prune(self._clock())
