"""Invitation links against the real server: create, list, revoke, check, accept; hashed
tokens, states, replays, concurrent accepts and the per-address limit."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.accounts_support import STRONG, admin_and_token, assert_error, bearer
from tests.support import RunningServer, running_server

INVITATION_KEYS = {
    "id",
    "max_uses",
    "uses",
    "expires_at",
    "is_admin",
    "note",
    "created_at",
    "created_by",
    "state",
}


async def invite(server: RunningServer, token: str, **body: Any) -> dict[str, Any]:
    response = await server.http.post("/api/admin/invitations", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    invitation: dict[str, Any] = response.json()["invitation"]
    return invitation


async def listed(server: RunningServer, token: str) -> list[dict[str, Any]]:
    response = await server.http.get("/api/admin/invitations", headers=bearer(token))
    assert response.status_code == 200, response.text
    invitations: list[dict[str, Any]] = response.json()["invitations"]
    return invitations


async def accept(server: RunningServer, link: str, username: str, password: str = STRONG) -> Any:
    return await server.http.post(
        "/api/invitations/accept",
        json={"token": link, "username": username, "password": password},
    )


async def check(server: RunningServer, link: str) -> Any:
    return await server.http.post("/api/invitations/check", json={"token": link})


async def test_create_returns_the_token_once_and_stores_only_its_hash(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    root, token = await admin_and_token(server)
    made = await invite(server, token, max_uses=3, expires_in=3600, is_admin=True, note="team")
    assert set(made) == INVITATION_KEYS | {"token", "url"}
    link = made["token"]
    assert len(link) >= 22  # 128 bits, URL-safe base64
    assert made["url"] == f"{server.url}/#invite={link}"
    assert made["max_uses"] == 3 and made["uses"] == 0 and made["state"] == "active"
    assert made["is_admin"] is True and made["note"] == "team"
    assert made["created_by"] == {"user_id": root, "username": "root"}
    assert made["expires_at"] == pytest.approx(made["created_at"] + 3600, abs=1)

    defaults = await invite(server, token)
    assert defaults["max_uses"] == 1 and defaults["is_admin"] is False and defaults["note"] == ""
    assert defaults["expires_at"] == pytest.approx(defaults["created_at"] + 604_800, abs=1)
    assert defaults["token"] != link

    # Newest first, never with the token.
    items = await listed(server, token)
    assert [i["id"] for i in items] == [defaults["id"], made["id"]]
    assert all(set(i) == INVITATION_KEYS for i in items)

    # The database holds the SHA-256 only; no log line holds the token.
    db = server.app.container.db
    async with db.conn.execute("SELECT * FROM invitations") as cur:
        rows = [tuple(r) for r in await cur.fetchall()]
    assert hashlib.sha256(link.encode()).hexdigest() in {r[1] for r in rows}
    assert not any(link in str(v) for r in rows for v in r)
    assert (await check(server, link)).status_code == 200
    assert (await accept(server, link, "newbie")).status_code == 201
    assert not any(link in r.getMessage() for r in caplog.records)
    assert not any(STRONG in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "body",
    [
        {"max_uses": 0},
        {"max_uses": 1001},
        {"max_uses": "2"},
        {"max_uses": 1.5},
        {"expires_in": 299},
        {"expires_in": 7_776_001},
        {"is_admin": "true"},
        {"note": "x" * 201},
        {"note": 5},
        {"token": "mine"},
        [],
    ],
)
async def test_create_refuses_malformed_bodies(server: RunningServer, body: Any) -> None:
    _, token = await admin_and_token(server)
    response = await server.http.post("/api/admin/invitations", json=body, headers=bearer(token))
    assert_error(response, 400, "invalid_request")
    assert await listed(server, token) == []


async def test_check_and_accept_sign_the_new_user_in(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    made = await invite(server, token, max_uses=2, is_admin=True)
    checked = await check(server, made["token"])
    assert checked.status_code == 200, checked.text
    assert checked.json() == {
        "organisation": server.app.container.setup.site().name,
        "is_admin": True,
        "expires_at": made["expires_at"],
        "password_min_length": 8,
    }
    joined = await accept(server, made["token"], "newbie")
    assert joined.status_code == 201, joined.text
    body = joined.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "must_change_password",
    }
    assert body["must_change_password"] is False and body["token_type"] == "Bearer"
    me = await server.http.get("/api/me", headers=bearer(body["access_token"]))
    assert me.json()["username"] == "newbie" and me.json()["is_admin"] is True
    sock = await server.connect(body["access_token"])
    await sock.next("presence:list")
    assert (await server.login("newbie", STRONG))["access_token"]
    sessions = await server.http.get("/api/account/sessions", headers=bearer(body["access_token"]))
    assert len(sessions.json()["sessions"]) == 2
    assert [i["uses"] for i in await listed(server, token)] == [1]


async def test_accept_errors_leave_the_use_unspent(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    await server.add_user("taken")
    made = await invite(server, token)
    link = made["token"]
    assert_error(await accept(server, link, "TAKEN"), 409, "conflict")
    assert_error(await accept(server, link, "ok", "password1"), 400, "weak_password")
    assert_error(await accept(server, link, "okname1", "okname1"), 400, "weak_password")
    assert_error(await accept(server, link, "ok", "short"), 400, "weak_password")
    assert_error(await accept(server, link, "bad name", STRONG), 400, "invalid_request")
    assert_error(await accept(server, link, "ok", "x" * 1025), 400, "invalid_request")
    for bad in [
        {"token": link, "username": "ok"},
        {"token": link, "username": "ok", "password": STRONG, "is_admin": True},
        {"token": 5, "username": "ok", "password": STRONG},
        {"token": "x" * 257, "username": "ok", "password": STRONG},
        {"token": link, "username": "x" * 65, "password": STRONG},
    ]:
        assert_error(
            await server.http.post("/api/invitations/accept", json=bad), 400, "invalid_request"
        )
    assert (await listed(server, token))[0]["uses"] == 0
    assert (await accept(server, link, "ok")).status_code == 201


async def test_used_up_revoked_expired_and_unknown_links(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    single = await invite(server, token)
    assert (await accept(server, single["token"], "first")).status_code == 201
    # Replayed: the same link again.
    assert_error(await accept(server, single["token"], "second"), 410, "invitation_used_up")
    assert_error(await check(server, single["token"]), 410, "invitation_used_up")

    revoked = await invite(server, token, max_uses=5)
    gone = await server.http.delete(
        f"/api/admin/invitations/{revoked['id']}", headers=bearer(token)
    )
    assert gone.status_code == 204
    again = await server.http.delete(
        f"/api/admin/invitations/{revoked['id']}", headers=bearer(token)
    )
    assert again.status_code == 204  # idempotent
    assert_error(await check(server, revoked["token"]), 410, "invitation_revoked")
    assert_error(await accept(server, revoked["token"], "third"), 410, "invitation_revoked")
    unknown = await server.http.delete("/api/admin/invitations/999", headers=bearer(token))
    assert_error(unknown, 404, "not_found")

    expired = await invite(server, token)
    async with server.app.container.db.transaction() as conn:
        await conn.execute(
            "UPDATE invitations SET expires_at = created_at - 1 WHERE id = ?", (expired["id"],)
        )
    assert_error(await check(server, expired["token"]), 410, "invitation_expired")
    assert_error(await accept(server, expired["token"], "fourth"), 410, "invitation_expired")

    states = {i["id"]: i["state"] for i in await listed(server, token)}
    assert states == {
        single["id"]: "used_up",
        revoked["id"]: "revoked",
        expired["id"]: "expired",
    }
    assert_error(await check(server, "A" * 22), 404, "invitation_invalid")
    assert_error(await check(server, "é"), 404, "invitation_invalid")
    for bad in [{}, {"token": ""}, {"token": None}, {"token": "x" * 257}, {"t": "x"}, "x"]:
        response = await server.http.post("/api/invitations/check", json=bad)
        assert_error(response, 400, "invalid_request")
    assert await server.app.container.users.by_username("fourth") is None


@pytest.mark.timeout(90)
async def test_concurrent_accepts_of_a_single_use_link_make_one_account(
    tmp_path: Path,
) -> None:
    async with running_server(
        tmp_path / "d", {"auth": {"invitation_signups_per_hour": 100}}
    ) as server:
        _, token = await admin_and_token(server)
        made = await invite(server, token)
        results = await asyncio.gather(
            *(accept(server, made["token"], f"racer{i}") for i in range(8))
        )
        statuses = sorted(r.status_code for r in results)
        assert statuses == [201] + [410] * 7, [r.text for r in results]
        for loser in (r for r in results if r.status_code == 410):
            assert loser.json()["error"]["code"] == "invitation_used_up"
        names = [u.username for u in await server.app.container.users.list_all()]
        assert len(names) == 2 and "root" in names
        assert len([n for n in names if n.startswith("racer")]) == 1
        assert (await listed(server, token))[0]["uses"] == 1

        # A 3-use link under the same race: exactly three accounts.
        triple = await invite(server, token, max_uses=3)
        results = await asyncio.gather(
            *(accept(server, triple["token"], f"team{i}") for i in range(8))
        )
        assert sorted(r.status_code for r in results) == [201] * 3 + [410] * 5


async def test_signups_and_failed_checks_are_limited_per_address(tmp_path: Path) -> None:
    async with running_server(
        tmp_path / "d", {"auth": {"invitation_signups_per_hour": 3}}
    ) as server:
        _, token = await admin_and_token(server)
        made = await invite(server, token, max_uses=10)
        assert (await accept(server, made["token"], "one")).status_code == 201
        assert_error(await check(server, "wrong-guess-1"), 404, "invitation_invalid")
        assert_error(await check(server, "wrong-guess-2"), 404, "invitation_invalid")
        limited = await check(server, made["token"])
        error = assert_error(limited, 429, "rate_limited")
        assert 0 < error["retry_after"] <= 3600
        assert int(limited.headers["Retry-After"]) >= 1
        assert_error(await accept(server, made["token"], "two"), 429, "rate_limited")
        assert await server.app.container.users.by_username("two") is None
        # Admin APIs and logins are not affected.
        assert len(await listed(server, token)) == 1


async def test_invitations_of_a_deleted_admin_show_a_deleted_creator(
    server: RunningServer,
) -> None:
    _, token = await admin_and_token(server)
    other, other_token = await admin_and_token(server, "other")
    made = await invite(server, other_token)
    deleted = await server.http.delete(f"/api/admin/users/{other}", headers=bearer(token))
    assert deleted.status_code == 204
    items = await listed(server, token)
    assert items[0]["created_by"] == {"user_id": other, "username": "Deleted account"}
    # The link itself still works.
    assert (await accept(server, made["token"], "late")).status_code == 201
