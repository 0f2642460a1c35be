"""The caller's own account against the real server: password change and sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.accounts_support import OTHER_STRONG, STRONG, assert_error, bearer
from tests.support import PASSWORD, RunningServer, running_server


async def login_as(server: RunningServer, name: str, agent: str, password: str = PASSWORD) -> Any:
    response = await server.http.post(
        "/api/auth/login",
        json={"username": name, "password": password},
        headers={"User-Agent": agent},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def change(server: RunningServer, token: str, body: Any) -> Any:
    return await server.http.post("/api/account/password", json=body, headers=bearer(token))


async def sessions(server: RunningServer, token: str) -> list[dict[str, Any]]:
    response = await server.http.get("/api/account/sessions", headers=bearer(token))
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["sessions"]
    return found


async def test_password_change_keeps_this_login_and_ends_the_others(
    server: RunningServer,
) -> None:
    await server.add_user("alice")
    here = await login_as(server, "alice", "laptop")
    there = await login_as(server, "alice", "phone")
    phone = await server.connect(there["access_token"])
    await phone.next("presence:list")
    laptop = await server.connect(here["access_token"])
    await laptop.next("presence:list")

    changed = await change(
        server,
        here["access_token"],
        {"current_password": PASSWORD, "new_password": STRONG},
    )
    assert changed.status_code == 204, changed.text
    closed = await phone.next("session:close")
    assert closed["reason"] == "token_revoked"
    assert laptop.sio.connected
    # The other login is over, including a replay of its refresh token.
    assert_error(
        await server.http.post("/api/auth/refresh", json={"refresh_token": there["refresh_token"]}),
        401,
        "token_revoked",
    )
    assert_error(
        await server.http.get("/api/me", headers=bearer(there["access_token"])),
        401,
        "token_revoked",
    )
    # This one goes on.
    assert (
        await server.http.get("/api/me", headers=bearer(here["access_token"]))
    ).status_code == 200
    refreshed = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": here["refresh_token"]}
    )
    assert refreshed.status_code == 200
    wrong = await server.http.post(
        "/api/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert_error(wrong, 401, "invalid_credentials")
    assert (await server.login("alice", STRONG))["access_token"]


async def test_password_change_refuses_wrong_weak_and_malformed(server: RunningServer) -> None:
    await server.add_user("alice")
    token = await server.token("alice")
    no_token = await server.http.post(
        "/api/account/password", json={"current_password": PASSWORD, "new_password": STRONG}
    )
    assert_error(no_token, 401, "token_missing")
    assert_error(
        await change(server, token, {"current_password": "nope-nope", "new_password": STRONG}),
        401,
        "invalid_credentials",
    )
    for weak in ["short", "iloveyou1", "Password123"]:
        response = await change(server, token, {"current_password": PASSWORD, "new_password": weak})
        assert_error(response, 400, "weak_password")
        assert weak not in response.text
    await server.add_user("longname1")  # the username itself is refused, whatever its case
    long_token = await server.token("longname1")
    assert_error(
        await change(
            server, long_token, {"current_password": PASSWORD, "new_password": "LongName1"}
        ),
        400,
        "weak_password",
    )
    for bad in [
        {"current_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": STRONG, "x": 1},
        {"current_password": PASSWORD, "new_password": 12345678},
        {"current_password": PASSWORD, "new_password": "x" * 1025},
        {"current_password": "", "new_password": STRONG},
        ["x"],
    ]:
        assert_error(await change(server, token, bad), 400, "invalid_request")
    huge = await change(server, token, {"current_password": PASSWORD, "new_password": "x" * 70_000})
    assert_error(huge, 413, "payload_too_large")
    # Still the old password.
    assert (await server.login("alice"))["must_change_password"] is False


async def test_wrong_current_passwords_are_throttled_like_logins(tmp_path: Path) -> None:
    overrides = {"auth": {"login_free_failures": 2, "login_base_delay": 30.0}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        token = await server.token("alice")
        body = {"current_password": "wrong-guess", "new_password": STRONG}
        for _ in range(2):
            assert_error(await change(server, token, body), 401, "invalid_credentials")
        limited = await change(server, token, body)
        assert_error(limited, 429, "rate_limited")
        # Even the right password waits now.
        right = {"current_password": PASSWORD, "new_password": STRONG}
        assert_error(await change(server, token, right), 429, "rate_limited")


async def test_sessions_list_and_end(server: RunningServer) -> None:
    await server.add_user("alice")
    await server.add_user("bob")
    first = await login_as(server, "alice", "Browser One")
    second = await login_as(server, "alice", "Browser Two " + "x" * 600)
    third = await login_as(server, "alice", "Browser Three")
    bob = await login_as(server, "bob", "Bob's")
    logged_out = await server.http.post("/api/auth/logout", headers=bearer(third["access_token"]))
    assert logged_out.status_code == 204

    listed = await sessions(server, first["access_token"])
    assert [s["current"] for s in listed] == [False, True]  # newest first; third is gone
    assert set(listed[0]) == {
        "id",
        "created_at",
        "last_used_at",
        "client_address",
        "user_agent",
        "current",
    }
    assert listed[0]["user_agent"].startswith("Browser Two") and len(listed[0]["user_agent"]) == 256
    assert listed[1]["user_agent"] == "Browser One"
    assert all(s["client_address"] == "127.0.0.1" for s in listed)
    before = listed[0]["last_used_at"]

    # A refresh moves last_used_at and keeps the session's id.
    refreshed = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert refreshed.status_code == 200
    second_tokens = refreshed.json()
    again = await sessions(server, second_tokens["access_token"])
    assert [s["id"] for s in again] == [s["id"] for s in listed]
    assert again[0]["current"] and again[0]["last_used_at"] >= before

    # End the other one: its socket closes, its tokens stop working.
    sock = await server.connect(second_tokens["access_token"])
    await sock.next("presence:list")
    other_id = listed[0]["id"]
    ended = await server.http.delete(
        f"/api/account/sessions/{other_id}", headers=bearer(first["access_token"])
    )
    assert ended.status_code == 204
    closed = await sock.next("session:close")
    assert closed["reason"] == "token_revoked"
    assert_error(
        await server.http.post(
            "/api/auth/refresh", json={"refresh_token": second_tokens["refresh_token"]}
        ),
        401,
        "token_revoked",
    )
    assert [s["id"] for s in await sessions(server, first["access_token"])] == [listed[1]["id"]]

    # Replayed, someone else's, unknown, malformed: 404.
    bob_sessions = await sessions(server, bob["access_token"])
    for path in [
        f"/api/account/sessions/{other_id}",
        f"/api/account/sessions/{bob_sessions[0]['id']}",
        "/api/account/sessions/99999",
        "/api/account/sessions/abc",
    ]:
        response = await server.http.delete(path, headers=bearer(first["access_token"]))
        assert_error(response, 404, "not_found")
    assert len(await sessions(server, bob["access_token"])) == 1
    assert_error(await server.http.get("/api/account/sessions"), 401, "token_missing")
    assert_error(
        await server.http.delete(f"/api/account/sessions/{listed[1]['id']}"), 401, "token_missing"
    )

    # Ending your own session is a logout.
    own = await server.http.delete(
        f"/api/account/sessions/{listed[1]['id']}", headers=bearer(first["access_token"])
    )
    assert own.status_code == 204
    assert_error(
        await server.http.get("/api/me", headers=bearer(first["access_token"])),
        401,
        "token_revoked",
    )


@pytest.mark.parametrize("agent", ["", "\u00e9\u00e8 agent"])
async def test_sessions_record_any_user_agent(server: RunningServer, agent: str) -> None:
    await server.add_user("alice")
    response = await server.http.post(
        "/api/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={b"User-Agent": agent.encode()},
    )
    assert response.status_code == 200
    listed = await sessions(server, response.json()["access_token"])
    assert len(listed) == 1 and isinstance(listed[0]["user_agent"], str)


async def test_change_clears_an_admin_reset(server: RunningServer) -> None:
    root = await server.add_user("root", admin=True)
    assert root
    bob = await server.add_user("bob")
    admin = await server.token("root")
    reset = await server.http.post(
        f"/api/admin/users/{bob}/password", json={"password": STRONG}, headers=bearer(admin)
    )
    assert reset.status_code == 204
    tokens = await server.login("bob", STRONG)
    assert tokens["must_change_password"] is True
    assert_error(
        await server.http.get("/api/account/sessions", headers=bearer(tokens["access_token"])),
        403,
        "password_change_required",
    )
    assert_error(
        await change(
            server, tokens["access_token"], {"current_password": STRONG, "new_password": STRONG[:4]}
        ),
        400,
        "weak_password",
    )
    ok = await change(
        server, tokens["access_token"], {"current_password": STRONG, "new_password": OTHER_STRONG}
    )
    assert ok.status_code == 204
    assert len(await sessions(server, tokens["access_token"])) == 1
    logout = await server.http.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert logout.status_code == 204
