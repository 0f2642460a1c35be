"""The admin API against the real server: list, create, disable, admin role, password reset,
delete; the last-admin rule; sockets closed at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from tests.accounts_support import (
    OTHER_STRONG,
    STRONG,
    admin_and_token,
    assert_error,
    bearer,
    user_and_token,
)
from tests.support import PASSWORD, RunningServer

USER_KEYS = {
    "user_id",
    "username",
    "is_admin",
    "disabled",
    "must_change_password",
    "online",
    "last_seen",
    "created_at",
}


async def patch(server: RunningServer, token: str, user_id: int, body: Any) -> Any:
    return await server.http.patch(f"/api/admin/users/{user_id}", json=body, headers=bearer(token))


async def admin_users(server: RunningServer, token: str) -> dict[str, dict[str, Any]]:
    response = await server.http.get("/api/admin/users", headers=bearer(token))
    assert response.status_code == 200, response.text
    return {u["username"]: u for u in response.json()["users"]}


# -- authorisation ----------------------------------------------------------------------------

ADMIN_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/api/admin/users", None),
    ("POST", "/api/admin/users", {"username": "zed", "password": STRONG}),
    ("PATCH", "/api/admin/users/1", {"disabled": True}),
    ("POST", "/api/admin/users/1/password", {"password": STRONG}),
    ("DELETE", "/api/admin/users/1", None),
    ("POST", "/api/admin/invitations", {}),
    ("GET", "/api/admin/invitations", None),
    ("DELETE", "/api/admin/invitations/1", None),
]


async def test_admin_endpoints_refuse_no_token_bad_token_and_non_admins(
    server: RunningServer,
) -> None:
    await admin_and_token(server)
    _, user_token = await user_and_token(server, "bob")
    for method, path, body in ADMIN_CALLS:
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        none = await server.http.request(method, path, **kwargs)
        assert_error(none, 401, "token_missing")
        forged = await server.http.request(method, path, headers=bearer("x.y.z"), **kwargs)
        assert_error(forged, 401, "token_invalid")
        plain = await server.http.request(method, path, headers=bearer(user_token), **kwargs)
        assert_error(plain, 403, "forbidden")
    # Nothing changed.
    assert (await server.app.container.users.by_username("bob")) is not None
    assert await server.app.container.users.by_username("zed") is None


# -- list and create --------------------------------------------------------------------------


async def test_list_shows_online_admin_disabled_and_last_seen(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    await user_and_token(server, "bob")
    carol = await server.add_user("carol")
    await server.user_socket("bob")
    users = await admin_users(server, token)
    assert set(users) == {"root", "bob", "carol"}
    assert all(set(u) == USER_KEYS for u in users.values())
    assert users["root"]["is_admin"] and not users["bob"]["is_admin"]
    assert users["bob"]["online"] and not users["carol"]["online"]
    assert users["carol"] == {
        "user_id": carol,
        "username": "carol",
        "is_admin": False,
        "disabled": False,
        "must_change_password": False,
        "online": False,
        "last_seen": None,
        "created_at": users["carol"]["created_at"],
    }


async def test_create_user_must_change_password_by_default(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    made = await server.http.post(
        "/api/admin/users", json={"username": "dora", "password": STRONG}, headers=bearer(token)
    )
    assert made.status_code == 201, made.text
    user = made.json()["user"]
    assert set(user) == USER_KEYS
    assert user["username"] == "dora" and user["must_change_password"] is True
    assert user["is_admin"] is False and user["disabled"] is False
    login = await server.login("dora", STRONG)
    assert login["must_change_password"] is True

    admin_made = await server.http.post(
        "/api/admin/users",
        json={
            "username": "eve",
            "password": STRONG,
            "is_admin": True,
            "must_change_password": False,
        },
        headers=bearer(token),
    )
    assert admin_made.status_code == 201, admin_made.text
    assert admin_made.json()["user"]["is_admin"] is True
    assert (await server.login("eve", STRONG))["must_change_password"] is False


async def test_create_user_refuses_taken_names_weak_passwords_and_bad_bodies(
    server: RunningServer,
) -> None:
    _, token = await admin_and_token(server)
    await server.add_user("bob")

    async def create(body: Any) -> Any:
        return await server.http.post("/api/admin/users", json=body, headers=bearer(token))

    assert_error(await create({"username": "BOB", "password": STRONG}), 409, "conflict")
    assert_error(await create({"username": "new", "password": "short"}), 400, "weak_password")
    assert_error(await create({"username": "new", "password": "Password1"}), 400, "weak_password")
    assert_error(
        await create({"username": "new12345", "password": "NEW12345"}), 400, "weak_password"
    )
    assert_error(await create({"username": "new", "password": "x" * 1025}), 400, "invalid_request")
    assert_error(await create({"username": "bad name", "password": STRONG}), 400, "invalid_request")
    assert_error(
        await create({"username": "new", "password": STRONG, "x": 1}), 400, "invalid_request"
    )
    assert_error(
        await create({"username": "new", "password": STRONG, "is_admin": "yes"}),
        400,
        "invalid_request",
    )
    assert_error(await create({"username": "new"}), 400, "invalid_request")
    assert_error(await create([1, 2]), 400, "invalid_request")
    not_json = await server.http.post(
        "/api/admin/users",
        content=b"{not json",
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert_error(not_json, 400, "invalid_request")
    huge = await create({"username": "new", "password": STRONG, "pad": "x" * 70_000})
    assert_error(huge, 413, "payload_too_large")
    # The weak password never reached a log line or an error message.
    response = await create({"username": "new", "password": "Password1"})
    assert "Password1" not in response.text
    assert await server.app.container.users.by_username("new") is None


# -- must_change_password ---------------------------------------------------------------------


async def test_must_change_password_blocks_everything_until_changed(
    server: RunningServer,
) -> None:
    _, token = await admin_and_token(server)
    made = await server.http.post(
        "/api/admin/users", json={"username": "dora", "password": STRONG}, headers=bearer(token)
    )
    dora_id = made.json()["user"]["user_id"]
    login = await server.login("dora", STRONG)
    dora = login["access_token"]
    me = await server.http.get("/api/me", headers=bearer(dora))
    assert me.status_code == 200
    assert me.json() == {
        "user_id": dora_id,
        "username": "dora",
        "is_admin": False,
        "must_change_password": True,
    }
    for method, path in [
        ("GET", "/api/users"),
        ("GET", "/api/rooms"),
        ("GET", "/api/account/sessions"),
        ("GET", "/api/turn"),
    ]:
        assert_error(
            await server.http.request(method, path, headers=bearer(dora)),
            403,
            "password_change_required",
        )
    assert (await server.http.get("/api/site")).status_code == 200
    client = server.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(dora)
    assert isinstance(client.connect_error, dict)
    assert client.connect_error["data"]["code"] == "password_change_required"
    # Refresh works (the flag travels with it).
    refreshed = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert refreshed.status_code == 200 and refreshed.json()["must_change_password"] is True
    dora = refreshed.json()["access_token"]

    changed = await server.http.post(
        "/api/account/password",
        json={"current_password": STRONG, "new_password": OTHER_STRONG},
        headers=bearer(dora),
    )
    assert changed.status_code == 204, changed.text
    assert (await server.http.get("/api/users", headers=bearer(dora))).status_code == 200
    assert (await server.http.get("/api/me", headers=bearer(dora))).json()[
        "must_change_password"
    ] is False
    sock = await server.connect(dora)
    assert sock.sio.connected
    assert (await server.login("dora", OTHER_STRONG))["must_change_password"] is False


# -- disable ----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_disable_closes_sockets_refuses_login_and_refresh(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    bob_id = await server.add_user("bob")
    login = await server.login("bob")
    tabs = [await server.connect(login["access_token"]) for _ in range(2)]
    for tab in tabs:
        await tab.next("presence:list")
    other = await server.user_socket("root")  # someone else's socket stays open

    response = await patch(server, token, bob_id, {"disabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["disabled"] is True
    for tab in tabs:
        closed = await tab.next("session:close")
        assert closed["reason"] == "account_disabled" and closed["message"]
        await asyncio.wait_for(tab.disconnected.wait(), 5)
    assert other.sio.connected

    # The right password says disabled; a wrong one says nothing more than usual.
    right = await server.http.post(
        "/api/auth/login", json={"username": "bob", "password": PASSWORD}
    )
    assert_error(right, 403, "account_disabled")
    wrong = await server.http.post(
        "/api/auth/login", json={"username": "bob", "password": "not-the-password"}
    )
    assert_error(wrong, 401, "invalid_credentials")
    refresh = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert_error(refresh, 403, "account_disabled")
    old_access = await server.http.get("/api/me", headers=bearer(login["access_token"]))
    assert_error(old_access, 401, "token_revoked")  # the login ended with the disabling
    refused = server.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(login["access_token"])
    assert isinstance(refused.connect_error, dict)
    assert refused.connect_error["data"]["code"] == "token_revoked"
    assert (await admin_users(server, token))["bob"]["disabled"] is True

    # Enabled again: a fresh login works; the old login stays ended.
    assert (await patch(server, token, bob_id, {"disabled": False})).status_code == 200
    assert (await server.login("bob"))["access_token"]
    again = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert_error(again, 401, "token_revoked")


async def test_patch_refuses_bad_bodies_and_unknown_users(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    bob = await server.add_user("bob")
    assert_error(await patch(server, token, bob, {"disabled": "yes"}), 400, "invalid_request")
    assert_error(await patch(server, token, bob, {"disabled": 1}), 400, "invalid_request")
    assert_error(await patch(server, token, bob, {"name": "x"}), 400, "invalid_request")
    assert_error(await patch(server, token, bob, "disabled"), 400, "invalid_request")
    assert_error(await patch(server, token, 999, {"disabled": True}), 404, "not_found")
    no_change = await patch(server, token, bob, {})
    assert no_change.status_code == 200 and no_change.json()["user"]["disabled"] is False
    promoted = await patch(server, token, bob, {"is_admin": True})
    assert promoted.json()["user"]["is_admin"] is True
    assert (
        await server.http.get("/api/admin/users", headers=bearer(await server.token("bob")))
    ).status_code == 200


# -- the last admin ---------------------------------------------------------------------------


async def test_the_last_enabled_admin_stays(server: RunningServer) -> None:
    root, token = await admin_and_token(server)
    assert_error(await patch(server, token, root, {"is_admin": False}), 409, "last_admin")
    assert_error(await patch(server, token, root, {"disabled": True}), 409, "last_admin")
    deleted = await server.http.delete(f"/api/admin/users/{root}", headers=bearer(token))
    assert_error(deleted, 409, "last_admin")

    # With a second admin, an admin still may not demote, disable or delete themselves.
    second = await server.add_user("second", admin=True)
    assert_error(await patch(server, token, root, {"is_admin": False}), 409, "conflict")
    assert_error(await patch(server, token, root, {"disabled": True}), 409, "conflict")
    self_delete = await server.http.delete(f"/api/admin/users/{root}", headers=bearer(token))
    assert_error(self_delete, 409, "conflict")

    # A disabled admin does not count: with `second` disabled, root is the last enabled one.
    assert (await patch(server, token, second, {"disabled": True})).status_code == 200
    assert_error(await patch(server, token, root, {"is_admin": False}), 409, "last_admin")
    assert (await patch(server, token, second, {"disabled": False})).status_code == 200
    demoted = await patch(server, token, second, {"is_admin": False})
    assert demoted.status_code == 200 and demoted.json()["user"]["is_admin"] is False
    users = await admin_users(server, token)
    assert users["root"]["is_admin"] and not users["second"]["is_admin"]


async def test_two_admins_demoting_each_other_at_once_leave_one(server: RunningServer) -> None:
    a, a_token = await admin_and_token(server, "anna")
    b, b_token = await admin_and_token(server, "bert")
    results = await asyncio.gather(
        patch(server, a_token, b, {"is_admin": False}),
        patch(server, b_token, a, {"is_admin": False}),
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] == 200 and statuses[1] in (403, 409), [r.text for r in results]
    assert await server.app.container.users.enabled_admin_count() == 1


# -- password reset ---------------------------------------------------------------------------


async def test_reset_password_ends_logins_and_requires_a_change(server: RunningServer) -> None:
    _, token = await admin_and_token(server)
    bob = await server.add_user("bob")
    login = await server.login("bob")
    sock = await server.connect(login["access_token"])
    await sock.next("presence:list")

    reset = await server.http.post(
        f"/api/admin/users/{bob}/password", json={"password": STRONG}, headers=bearer(token)
    )
    assert reset.status_code == 204, reset.text
    closed = await sock.next("session:close")
    assert closed["reason"] == "token_revoked"
    # Replays of the old login are refused.
    old = await server.http.post(
        "/api/auth/refresh", json={"refresh_token": login["refresh_token"]}
    )
    assert_error(old, 401, "token_revoked")
    assert_error(
        await server.http.get("/api/me", headers=bearer(login["access_token"])),
        401,
        "token_revoked",
    )
    wrong_old = await server.http.post(
        "/api/auth/login", json={"username": "bob", "password": PASSWORD}
    )
    assert_error(wrong_old, 401, "invalid_credentials")
    fresh = await server.login("bob", STRONG)
    assert fresh["must_change_password"] is True
    assert (await admin_users(server, token))["bob"]["must_change_password"] is True

    async def reset_to(user_id: int, body: Any) -> Any:
        return await server.http.post(
            f"/api/admin/users/{user_id}/password", json=body, headers=bearer(token)
        )

    assert_error(await reset_to(bob, {"password": "123456789"}), 400, "weak_password")
    assert_error(await reset_to(bob, {"password": "bob"}), 400, "weak_password")
    assert_error(await reset_to(bob, {"password": 12345678}), 400, "invalid_request")
    assert_error(await reset_to(bob, {}), 400, "invalid_request")
    assert_error(await reset_to(999, {"password": STRONG}), 404, "not_found")


# -- delete -----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_delete_keeps_messages_frees_the_name_and_closes_sockets(
    server: RunningServer,
) -> None:
    _, token = await admin_and_token(server)
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice_token, bob_token = await server.token("alice"), await server.token("bob")
    alice = await server.connect(alice_token)
    await alice.next("presence:list")
    bob = await server.connect(bob_token)
    await bob.next("presence:list")

    group = await server.http.post(
        "/api/rooms", json={"name": "team", "member_ids": [bob_id]}, headers=bearer(alice_token)
    )
    group_id = group.json()["room"]["id"]
    direct = await server.http.post(
        "/api/rooms/direct", json={"user_id": alice_id}, headers=bearer(bob_token)
    )
    direct_id = direct.json()["room"]["id"]
    await bob.next("room:joined")
    for room_id, cid in ((group_id, "g1"), (direct_id, "d1")):
        ack = await bob.call(
            "chat:message", {"room_id": room_id, "text": f"hello {cid}", "client_msg_id": cid}
        )
        assert ack["ok"] is True, ack

    deleted = await server.http.delete(f"/api/admin/users/{bob_id}", headers=bearer(token))
    assert deleted.status_code == 204, deleted.text
    closed = await bob.next("session:close")
    assert closed["reason"] == "account_deleted" and closed["message"]
    left = await alice.next("room:left")
    assert left == {"room_id": group_id, "user_id": bob_id}

    # Messages stay, shown as from a deleted account.
    for room_id, text in ((group_id, "hello g1"), (direct_id, "hello d1")):
        history = await server.http.get(
            f"/api/rooms/{room_id}/messages", headers=bearer(alice_token)
        )
        messages = history.json()["messages"]
        assert [m["text"] for m in messages] == [text]
        assert messages[0]["sender"] == {"user_id": bob_id, "username": "Deleted account"}
    room = await server.http.get(f"/api/rooms/{group_id}", headers=bearer(alice_token))
    assert [m["user_id"] for m in room.json()["room"]["members"]] == [alice_id]
    direct_room = await server.http.get(f"/api/rooms/{direct_id}", headers=bearer(alice_token))
    names = {m["user_id"]: m["username"] for m in direct_room.json()["room"]["members"]}
    assert names == {alice_id: "alice", bob_id: "Deleted account"}

    # Gone from the lists; logins and tokens end.
    users = await server.http.get("/api/users", headers=bearer(alice_token))
    assert bob_id not in {u["user_id"] for u in users.json()["users"]}
    assert "bob" not in await admin_users(server, token)
    assert (await server.http.get("/api/me", headers=bearer(bob_token))).status_code == 401
    login = await server.http.post(
        "/api/auth/login", json={"username": "bob", "password": PASSWORD}
    )
    assert_error(login, 401, "invalid_credentials")

    # The name is free again; deleting the old id again is a 404.
    again = await server.http.post(
        "/api/admin/users", json={"username": "bob", "password": STRONG}, headers=bearer(token)
    )
    assert again.status_code == 201, again.text
    assert again.json()["user"]["user_id"] != bob_id
    replay = await server.http.delete(f"/api/admin/users/{bob_id}", headers=bearer(token))
    assert_error(replay, 404, "not_found")
    assert_error(await patch(server, token, bob_id, {"disabled": True}), 404, "not_found")
    assert_error(
        await server.http.post(
            "/api/rooms/direct", json={"user_id": bob_id}, headers=bearer(alice_token)
        ),
        404,
        "not_found",
    )
