"""TokenCodec against hand-made tokens: every way a JWT can be wrong is refused with a code."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.tokens import TokenCodec, TokenType

SECRET = "s" * 64
CONFIG = AuthConfig(jwt_secret=SecretStr(SECRET), jwt_key_id="k1", leeway=0)


def codec(config: AuthConfig = CONFIG) -> TokenCodec:
    return TokenCodec(config, time.time)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": "appliance",
        "aud": "appliance-clients",
        "sub": "7",
        "iat": now,
        "exp": now + 60,
        "jti": "abc",
        "typ": "access",
        "fam": "f1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: str = SECRET, kid: str = "k1", alg: str = "HS256") -> str:
    return jwt.encode(payload, key, alg, headers={"kid": kid})


def code_of(token: object, expected: TokenType = TokenType.ACCESS) -> ErrorCode:
    with pytest.raises(AppError) as info:
        codec().decode(token, expected)
    return info.value.code


def test_round_trip() -> None:
    token, issued = codec().issue(TokenType.ACCESS, 7, "fam")
    decoded = codec().decode(token, TokenType.ACCESS)
    assert decoded == issued
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "k1", "typ": "JWT"}


def test_alg_none_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode())
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode())
    token = header.rstrip(b"=").decode() + "." + body.rstrip(b"=").decode() + "."
    assert code_of(token) is ErrorCode.TOKEN_INVALID


def test_other_algorithm_with_same_secret_refused() -> None:
    assert code_of(sign(claims(), alg="HS512")) is ErrorCode.TOKEN_INVALID


@pytest.mark.parametrize(
    "token",
    [
        "",
        None,
        123,
        "not-a-jwt",
        "a.b.c",
        "x" * 5000,
    ],
)
def test_malformed(token: object) -> None:
    assert code_of(token) in {ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_MISSING}


def test_wrong_signature() -> None:
    assert code_of(sign(claims(), key="t" * 64)) is ErrorCode.TOKEN_INVALID


def test_unknown_key_id() -> None:
    assert code_of(sign(claims(), kid="k9")) is ErrorCode.TOKEN_INVALID


def test_expired() -> None:
    now = int(time.time())
    assert code_of(sign(claims(iat=now - 120, exp=now - 60))) is ErrorCode.TOKEN_EXPIRED


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "someone-else"},
        {"aud": ["appliance-clients", "other"]},
        {"iss": "evil"},
        {"typ": "refresh"},
        {"sub": "not-a-number"},
    ],
)
def test_wrong_claims(change: dict[str, Any]) -> None:
    assert code_of(sign(claims(**change))) is ErrorCode.TOKEN_INVALID


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud", "jti", "typ", "fam"])
def test_required_claims(missing: str) -> None:
    assert code_of(sign(claims(**{missing: None}))) is ErrorCode.TOKEN_INVALID


def test_refresh_token_is_not_an_access_token() -> None:
    token, _ = codec().issue(TokenType.REFRESH, 7, "fam")
    assert code_of(token, TokenType.ACCESS) is ErrorCode.TOKEN_INVALID
    access, _ = codec().issue(TokenType.ACCESS, 7, "fam")
    assert code_of(access, TokenType.REFRESH) is ErrorCode.TOKEN_INVALID


def test_retired_key_still_verifies_and_new_key_signs() -> None:
    old = sign(claims(), key=SECRET, kid="k1")
    rotated = AuthConfig(
        jwt_secret=SecretStr("n" * 64),
        jwt_key_id="k2",
        jwt_retired_keys={"k1": SecretStr(SECRET)},
    )
    assert codec(rotated).decode(old, TokenType.ACCESS).user_id == 7
    fresh, _ = codec(rotated).issue(TokenType.ACCESS, 7, "f")
    assert jwt.get_unverified_header(fresh)["kid"] == "k2"


def test_short_secret_rejected() -> None:
    with pytest.raises(ValueError, match="32 characters"):
        TokenCodec(AuthConfig(jwt_secret=SecretStr("short")), time.time)
