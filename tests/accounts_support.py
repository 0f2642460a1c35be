"""Helpers for the account, admin and invitation tests: bearer headers, error checks."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import RunningServer

STRONG = "violet tram 42 under glass"
OTHER_STRONG = "copper kettle sings at dawn"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["error"]["code"])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


async def admin_and_token(server: RunningServer, name: str = "root") -> tuple[int, str]:
    user_id = await server.add_user(name, admin=True)
    return user_id, await server.token(name)


async def user_and_token(server: RunningServer, name: str) -> tuple[int, str]:
    user_id = await server.add_user(name)
    return user_id, await server.token(name)
