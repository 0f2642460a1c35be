"""JWT access and refresh tokens: HS256 pinned, claims required, key ids for rotation."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.clock import Clock

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud", "jti", "typ", "fam"]


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    jti: str
    family: str
    typ: TokenType
    issued_at: float
    expires_at: float


class TokenCodec:
    def __init__(self, config: AuthConfig, clock: Clock) -> None:
        secret = config.jwt_secret.get_secret_value()
        if len(secret) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 characters")
        self._config = config
        self._clock = clock
        self._kid = config.jwt_key_id
        self._keys: dict[str, str] = {
            kid: key.get_secret_value() for kid, key in config.jwt_retired_keys.items()
        }
        self._keys[self._kid] = secret

    def issue(self, typ: TokenType, user_id: int, family: str) -> tuple[str, TokenClaims]:
        now = int(self._clock())
        ttl = self._config.access_ttl if typ is TokenType.ACCESS else self._config.refresh_ttl
        claims = TokenClaims(
            user_id=user_id,
            jti=secrets.token_urlsafe(16),
            family=family,
            typ=typ,
            issued_at=now,
            expires_at=now + ttl,
        )
        payload: dict[str, Any] = {
            "iss": self._config.issuer,
            "aud": self._config.audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + ttl,
            "jti": claims.jti,
            "typ": typ.value,
            "fam": family,
        }
        token = jwt.encode(payload, self._keys[self._kid], ALGORITHM, headers={"kid": self._kid})
        return token, claims

    def decode(self, token: object, expected: TokenType) -> TokenClaims:
        if not isinstance(token, str) or not token:
            raise AppError(ErrorCode.TOKEN_MISSING, "a token is required")
        if len(token) > 4096:
            raise AppError(ErrorCode.TOKEN_INVALID, "token is malformed")
        try:
            header = jwt.get_unverified_header(token)
            kid = header.get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise AppError(ErrorCode.TOKEN_INVALID, "token key is unknown")
            payload = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._config.audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise AppError(ErrorCode.TOKEN_EXPIRED, "token has expired") from None
        except jwt.InvalidTokenError:
            raise AppError(ErrorCode.TOKEN_INVALID, "token is invalid") from None
        if payload.get("typ") != expected.value:
            raise AppError(ErrorCode.TOKEN_INVALID, f"an {expected.value} token is required")
        try:
            user_id = int(payload["sub"])
            return TokenClaims(
                user_id=user_id,
                jti=str(payload["jti"]),
                family=str(payload["fam"]),
                typ=expected,
                issued_at=float(payload["iat"]),
                expires_at=float(payload["exp"]),
            )
        except (TypeError, ValueError):
            raise AppError(ErrorCode.TOKEN_INVALID, "token is invalid") from None
