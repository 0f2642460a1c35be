"""Accounts, login, token rotation and revocation."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.clock import Clock
from appliance.services.passwords import PasswordService
from appliance.services.throttle import LoginThrottle
from appliance.services.tokens import TokenClaims, TokenCodec, TokenType
from appliance.storage.tokens import TokenRepository
from appliance.storage.users import UsernameTaken, UserRecord, UserRepository

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MAX_PASSWORD_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is behind an access token, as the server knows them now."""

    user_id: int
    username: str
    is_admin: bool
    token: TokenClaims


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    access: TokenClaims


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

    def on_family_revoked(self, listener: Callable[[str], Awaitable[None]]) -> None:
        """Call `listener(family_id)` whenever a login's tokens are revoked."""
        self._revocation_listeners.append(listener)

    async def _revoke_family(self, family: str) -> None:
        await self._tokens.revoke_family(family, self._clock())
        for listener in self._revocation_listeners:
            await listener(family)

    # -- accounts -------------------------------------------------------------------------

    def validate_new_password(self, password: str) -> None:
        if len(password) < self._config.password_min_length:
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                f"password must be at least {self._config.password_min_length} characters",
            )
        if len(password) > MAX_PASSWORD_LENGTH:
            raise AppError(ErrorCode.INVALID_REQUEST, "password is too long")

    async def create_user(self, username: str, password: str, *, is_admin: bool) -> UserRecord:
        if not USERNAME_PATTERN.match(username):
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                "username must be 1-32 letters, digits, '.', '_' or '-', starting with a"
                " letter or digit",
            )
        self.validate_new_password(password)
        password_hash = await self._passwords.hash(password)
        try:
            return await self._users.create(
                username, password_hash, is_admin=is_admin, now=self._clock()
            )
        except UsernameTaken:
            raise AppError(ErrorCode.CONFLICT, f"user {username!r} already exists") from None

    # -- tokens ---------------------------------------------------------------------------

    async def _issue_pair(self, user_id: int, family: str) -> TokenPair:
        access, access_claims = self._codec.issue(TokenType.ACCESS, user_id, family)
        refresh, refresh_claims = self._codec.issue(TokenType.REFRESH, user_id, family)
        await self._tokens.add_refresh(
            refresh_claims.jti,
            family,
            user_id,
            refresh_claims.issued_at,
            refresh_claims.expires_at,
        )
        return TokenPair(access, refresh, self._config.access_ttl, access_claims)

    async def login(self, username: str, password: str, client: str) -> TokenPair:
        await self._throttle.check(username, client)
        user = await self._users.by_username(username)
        ok = await self._passwords.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._throttle.failed(username, client)
            raise AppError(ErrorCode.INVALID_CREDENTIALS, "wrong username or password")
        await self._throttle.succeeded(username)
        if self._passwords.needs_rehash(user.password_hash):
            await self._users.update_password(user.id, await self._passwords.hash(password))
        return await self._issue_pair(user.id, secrets.token_urlsafe(12))

    async def refresh(self, refresh_token: str) -> TokenPair:
        claims = self._codec.decode(refresh_token, TokenType.REFRESH)
        record = await self._tokens.get_refresh(claims.jti)
        if record is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "refresh token is not known")
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
        if await self._users.by_id(record.user_id) is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "account no longer exists")
        return TokenPair(access, new_refresh, self._config.access_ttl, access_claims)

    async def authenticate(self, access_token: object) -> Principal:
        claims = self._codec.decode(access_token, TokenType.ACCESS)
        if await self._tokens.family_revoked(claims.family):
            raise AppError(ErrorCode.TOKEN_REVOKED, "token has been revoked")
        user = await self._users.by_id(claims.user_id)
        if user is None:
            raise AppError(ErrorCode.TOKEN_REVOKED, "account no longer exists")
        return Principal(user.id, user.username, user.is_admin, claims)

    async def logout(self, principal: Principal) -> None:
        await self._revoke_family(principal.token.family)

    async def prune(self) -> None:
        await self._tokens.prune(self._clock())
