"""Chat against the real server: rooms, delivery, idempotency, history, catch-up, edits,
read receipts, typing indicators."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support import EventClient, RunningServer, running_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Person:
    """A logged-in user with an HTTP token and one socket."""

    def __init__(self, server: RunningServer, name: str, user_id: int, token: str) -> None:
        self.server = server
        self.name = name
        self.id = user_id
        self.token = token
        self.sockets: list[EventClient] = []

    @property
    def sock(self) -> EventClient:
        return self.sockets[0]

    async def tab(self) -> EventClient:
        client = await self.server.connect(self.token)
        await client.next("presence:list")
        self.sockets.append(client)
        return client

    async def get(self, path: str, **kwargs: Any) -> Any:
        headers = {**bearer(self.token), **kwargs.pop("headers", {})}
        return await self.server.http.get(path, headers=headers, **kwargs)

    async def post(self, path: str, body: Any) -> Any:
        return await self.server.http.post(path, json=body, headers=bearer(self.token))

    async def direct(self, other: Person) -> int:
        response = await self.post("/api/rooms/direct", {"user_id": other.id})
        assert response.status_code == 200, response.text
        return int(response.json()["room"]["id"])

    async def send(self, room_id: int, text: str, cid: str, sock: EventClient | None = None) -> Any:
        client = sock or self.sock
        return await client.call(
            "chat:message", {"room_id": room_id, "text": text, "client_msg_id": cid}
        )


async def person(server: RunningServer, name: str, *, connect: bool = True) -> Person:
    user_id = await server.add_user(name)
    someone = Person(server, name, user_id, await server.token(name))
    if connect:
        await someone.tab()
    return someone


async def test_direct_message_flow(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    room = await alice.direct(bob)
    assert await bob.direct(alice) == room  # one direct room per pair
    joined = await bob.sock.next("room:joined")
    assert joined["room"]["id"] == room
    ack = await alice.send(room, "  hello bob  ", "c1")
    assert ack["ok"] is True
    message = ack["message"]
    assert message["text"] == "hello bob"
    assert message["sender"] == {"user_id": alice.id, "username": "alice"}
    assert message["room_id"] == room and message["client_msg_id"] == "c1"
    assert isinstance(message["id"], int) and message["created_at"] > 0
    assert await bob.sock.next("chat:message") == message
    # It was committed before the ack: it is in history.
    history = (await bob.get(f"/api/rooms/{room}/messages")).json()
    assert history["messages"] == [message]


async def test_direct_room_validation(server: RunningServer) -> None:
    alice = await person(server, "alice", connect=False)
    own = await alice.post("/api/rooms/direct", {"user_id": alice.id})
    assert own.status_code == 400
    missing = await alice.post("/api/rooms/direct", {"user_id": 999})
    assert missing.status_code == 404
    bad = await alice.post("/api/rooms/direct", {"user_id": "x"})
    assert bad.status_code == 400
    unauth = await server.http.post("/api/rooms/direct", json={"user_id": 1})
    assert unauth.status_code == 401


async def test_every_tab_of_every_member_receives(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    carol = await person(server, "carol")
    alice_tab2 = await alice.tab()
    created = await alice.post("/api/rooms", {"name": "Team", "member_ids": [bob.id, carol.id]})
    assert created.status_code == 201
    room = created.json()["room"]
    assert [m["username"] for m in room["members"]] == ["alice", "bob", "carol"]
    assert [m["role"] for m in room["members"]] == ["admin", "member", "member"]
    ack = await alice.send(room["id"], "hi team", "t1")
    for client in (alice_tab2, bob.sock, carol.sock):
        got = await client.next("chat:message")
        assert got == ack["message"]
    # The sending socket got the ack, not a second copy.
    probe = await alice.sock.call("presence:list")
    assert probe["ok"]
    assert [n for n, _ in alice.sock.drain() if n == "chat:message"] == []


async def test_non_member_cannot_read_post_or_learn(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    mallory = await person(server, "mallory")
    room = await alice.direct(bob)
    await alice.send(room, "secret", "s1")
    for path in (f"/api/rooms/{room}", f"/api/rooms/{room}/messages"):
        response = await mallory.get(path)
        assert response.status_code == 404
        nonexistent = await mallory.get(path.replace(str(room), "9999"))
        assert response.json() == nonexistent.json()
    ack = await mallory.send(room, "let me in", "m1")
    assert ack == {"ok": False, "error": {"code": "not_found", "message": "no such room"}}
    sync = await mallory.sock.call("chat:sync", {"rooms": [{"room_id": room, "last_id": 0}]})
    assert sync["rooms"] == [{"room_id": room, "error": {"code": "not_found"}}]
    joined = await mallory.post(f"/api/rooms/{room}/members", {"user_id": mallory.id})
    assert joined.status_code == 404
    assert [n for n, _ in mallory.sock.drain() if n.startswith("chat:")] == []
    rooms = (await mallory.get("/api/rooms")).json()["rooms"]
    assert rooms == []


async def test_group_membership_changes(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    carol = await person(server, "carol")
    room = (await alice.post("/api/rooms", {"name": "G", "member_ids": [bob.id]})).json()["room"]
    rid = room["id"]
    # Members cannot add; admins can.
    denied = await bob.post(f"/api/rooms/{rid}/members", {"user_id": carol.id})
    assert denied.status_code == 403
    assert (await alice.post(f"/api/rooms/{rid}/members", {"user_id": carol.id})).is_success
    assert (await carol.sock.next("room:joined"))["room"]["id"] == rid
    ack = await alice.send(rid, "welcome carol", "w1")
    assert (await carol.sock.next("chat:message"))["id"] == ack["message"]["id"]
    # Removing: the removed member hears it and receives nothing after.
    removed = await server.http.delete(
        f"/api/rooms/{rid}/members/{carol.id}", headers=bearer(alice.token)
    )
    assert removed.status_code == 204
    assert await carol.sock.next("room:left") == {"room_id": rid, "user_id": carol.id}
    await alice.send(rid, "carol is gone", "w2")
    assert (await bob.sock.next("chat:message"))["text"] == "welcome carol"
    assert (await bob.sock.next("chat:message"))["text"] == "carol is gone"
    assert (await carol.sock.call("presence:list"))["ok"]
    assert [n for n, _ in carol.sock.drain() if n == "chat:message"] == []
    assert (await carol.get(f"/api/rooms/{rid}/messages")).status_code == 404
    # Leaving by yourself.
    left = await server.http.delete(f"/api/rooms/{rid}/members/{bob.id}", headers=bearer(bob.token))
    assert left.status_code == 204
    # Direct rooms cannot be changed.
    direct = await alice.direct(bob)
    assert (
        await alice.post(f"/api/rooms/{direct}/members", {"user_id": carol.id})
    ).status_code == 403


async def test_group_validation(server: RunningServer) -> None:
    alice = await person(server, "alice", connect=False)
    for body in (
        {"name": ""},
        {"name": "x" * 81},
        {"name": "ok", "member_ids": [999]},
        {"name": "ok", "member_ids": "1"},
        {"name": "ok", "extra": 1},
    ):
        response = await alice.post("/api/rooms", body)
        assert response.status_code in (400, 404), body
        assert response.json()["error"]["code"] in ("invalid_request", "not_found")


async def test_idempotent_send_including_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "d"
    async with running_server(data) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        first = await alice.send(room, "once", "same-id")
        again = await alice.send(room, "once (resent)", "same-id")
        assert again["message"] == first["message"]
        # Another user may use the same client id: it is per sender.
        other = await bob.send(room, "mine", "same-id")
        assert other["message"]["id"] != first["message"]["id"]
        await bob.sock.next("chat:message")
        assert (await bob.sock.call("presence:list"))["ok"]
        assert [n for n, _ in bob.sock.drain() if n == "chat:message"] == []
    async with running_server(data) as server:
        token = await server.token("alice")
        client = await server.connect(token)
        await client.next("presence:list")
        after = await client.call(
            "chat:message", {"room_id": room, "text": "once", "client_msg_id": "same-id"}
        )
        assert after["message"] == first["message"]
        history = await server.http.get(f"/api/rooms/{room}/messages", headers=bearer(token))
        assert len(history.json()["messages"]) == 2


async def test_concurrent_sends_share_transactions(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    room = await alice.direct(bob)
    before = server.app.container.writer.batches
    acks = await asyncio.gather(*(alice.send(room, f"m{i}", f"c{i}") for i in range(25)))
    assert all(a["ok"] for a in acks)
    assert len({a["message"]["id"] for a in acks}) == 25
    assert server.app.container.writer.batches - before < 25


async def test_history_pagination_edges(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"chat": {"history_max_limit": 5}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        empty = (await alice.get(f"/api/rooms/{room}/messages")).json()
        assert empty == {"messages": [], "next_before": None}
        ids = [(await alice.send(room, f"n{i}", f"p{i}"))["message"]["id"] for i in range(7)]
        page = (await alice.get(f"/api/rooms/{room}/messages", params={"limit": 100})).json()
        assert [m["id"] for m in page["messages"]] == ids[::-1][:5]  # capped at 5, newest first
        assert page["next_before"] == ids[2]
        rest = (
            await alice.get(
                f"/api/rooms/{room}/messages", params={"before": page["next_before"], "limit": 100}
            )
        ).json()
        assert [m["id"] for m in rest["messages"]] == [ids[1], ids[0]]
        assert rest["next_before"] is None
        one = (await alice.get(f"/api/rooms/{room}/messages", params={"limit": 1})).json()
        assert [m["id"] for m in one["messages"]] == [ids[-1]]
        oldest = (await alice.get(f"/api/rooms/{room}/messages", params={"before": ids[0]})).json()
        assert oldest == {"messages": [], "next_before": None}
        for params in ({"limit": 0}, {"limit": "x"}, {"before": -1}, {"before": "abc"}):
            bad = await alice.get(f"/api/rooms/{room}/messages", params=params)
            assert bad.status_code == 400, params


async def test_catch_up_after_reconnect(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"chat": {"sync_max_messages": 3}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        seen = (await alice.send(room, "before", "b0"))["message"]
        await bob.sock.next("chat:message")
        await bob.sock.close()
        sent = [(await alice.send(room, f"missed {i}", f"m{i}"))["message"] for i in range(5)]
        # A deleted one is not sent again.
        await alice.sock.call("chat:delete", {"message_id": sent[1]["id"]})
        expected = [m for m in sent if m["id"] != sent[1]["id"]]
        tab = await bob.tab()
        first = await tab.call("chat:sync", {"rooms": [{"room_id": room, "last_id": seen["id"]}]})
        assert first["ok"]
        [entry] = first["rooms"]
        assert entry["messages"] == expected[:3]
        assert entry["has_more"] is True
        last = entry["messages"][-1]["id"]
        second = await tab.call("chat:sync", {"rooms": [{"room_id": room, "last_id": last}]})
        assert second["rooms"][0]["messages"] == expected[3:]
        assert second["rooms"][0]["has_more"] is False


async def test_edit_and_delete(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    room = await alice.direct(bob)
    message = (await alice.send(room, "typo", "e1"))["message"]
    await bob.sock.next("chat:message")
    forbidden = await bob.sock.call("chat:edit", {"message_id": message["id"], "text": "hacked"})
    assert forbidden["error"]["code"] == "forbidden"
    edited = await alice.sock.call("chat:edit", {"message_id": message["id"], "text": "fixed"})
    assert edited["ok"] and edited["message"]["text"] == "fixed"
    assert "edited_at" in edited["message"]
    assert (await bob.sock.next("chat:edit"))["message"] == edited["message"]
    history = (await bob.get(f"/api/rooms/{room}/messages")).json()["messages"]
    assert history[0]["text"] == "fixed"
    assert (await bob.sock.call("chat:delete", {"message_id": message["id"]}))["error"][
        "code"
    ] == "forbidden"
    deleted = await alice.sock.call("chat:delete", {"message_id": message["id"]})
    assert deleted == {"ok": True, "room_id": room, "message_id": message["id"]}
    assert await bob.sock.next("chat:delete") == {"room_id": room, "message_id": message["id"]}
    history = (await bob.get(f"/api/rooms/{room}/messages")).json()["messages"]
    assert history[0]["deleted"] is True and history[0]["text"] == ""
    again = await alice.sock.call("chat:delete", {"message_id": message["id"]})
    assert again["error"]["code"] == "not_found"
    edit_deleted = await alice.sock.call("chat:edit", {"message_id": message["id"], "text": "x"})
    assert edit_deleted["error"]["code"] == "not_found"
    mallory = await person(server, "mallory")
    hidden = await mallory.sock.call("chat:edit", {"message_id": message["id"], "text": "x"})
    assert hidden["error"]["code"] == "not_found"


async def test_read_receipts_and_unread_counts(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    bob_tab2 = await bob.tab()
    room = await alice.direct(bob)
    ids = [(await alice.send(room, f"r{i}", f"r{i}"))["message"]["id"] for i in range(3)]
    rooms = (await bob.get("/api/rooms")).json()["rooms"]
    assert rooms[0]["unread"] == 3
    assert rooms[0]["last_message"]["id"] == ids[-1]
    assert (await alice.get("/api/rooms")).json()["rooms"][0]["unread"] == 0  # own messages
    ack = await bob.sock.call("chat:read", {"room_id": room, "message_id": ids[1]})
    assert ack == {"ok": True, "room_id": room, "message_id": ids[1], "unread": 1}
    receipt = {"room_id": room, "user_id": bob.id, "message_id": ids[1]}
    assert await alice.sock.next("chat:read") == receipt
    assert await bob_tab2.next("chat:read") == receipt
    # Never backwards, and no news is not broadcast.
    back = await bob.sock.call("chat:read", {"room_id": room, "message_id": ids[0]})
    assert back["message_id"] == ids[1] and back["unread"] == 1
    same = await bob.sock.call("chat:read", {"room_id": room, "message_id": ids[1]})
    assert same["message_id"] == ids[1]
    assert (await alice.sock.call("presence:list"))["ok"]
    assert [n for n, _ in alice.sock.drain() if n == "chat:read"] == []
    members = (await alice.get(f"/api/rooms/{room}")).json()["room"]["members"]
    assert {m["username"]: m["last_read_id"] for m in members} == {"alice": 0, "bob": ids[1]}
    assert (await bob.get("/api/rooms")).json()["rooms"][0]["unread"] == 1
    other_room = await alice.direct(await person(server, "carol", connect=False))
    stray = (await alice.send(other_room, "elsewhere", "x1"))["message"]["id"]
    wrong = await bob.sock.call("chat:read", {"room_id": room, "message_id": stray})
    assert wrong["error"]["code"] == "not_found"


async def test_typing_relay_expiry_and_not_stored(tmp_path: Path) -> None:
    overrides: dict[str, dict[str, Any]] = {
        "chat": {"typing_ttl": 0.4},
        "rate_limits": {"typing_burst": 50},
    }
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        await bob.sock.next("room:joined")
        conn = server.app.container.db.conn
        async with conn.execute("SELECT total_changes()") as cur:
            row = await cur.fetchone()
            assert row is not None
            changes_before = row[0]
        assert (await alice.sock.call("chat:typing", {"room_id": room, "typing": True}))["ok"]
        started = {"room_id": room, "user_id": alice.id, "typing": True}
        assert await bob.sock.next("chat:typing") == started
        # A refresh restarts the timer without a second event; then it expires by itself.
        await alice.sock.call("chat:typing", {"room_id": room, "typing": True})
        stopped = await bob.sock.next("chat:typing", timeout=3)
        assert stopped == {"room_id": room, "user_id": alice.id, "typing": False}
        # Typing then stopping explicitly.
        await alice.sock.call("chat:typing", {"room_id": room, "typing": True})
        assert (await bob.sock.next("chat:typing"))["typing"] is True
        await alice.sock.call("chat:typing", {"room_id": room, "typing": False})
        assert (await bob.sock.next("chat:typing"))["typing"] is False
        # The typer hears nothing about themselves.
        assert [n for n, _ in alice.sock.drain() if n == "chat:typing"] == []
        async with conn.execute("SELECT total_changes()") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == changes_before
        # Sending a message ends typing.
        await alice.sock.call("chat:typing", {"room_id": room, "typing": True})
        assert (await bob.sock.next("chat:typing"))["typing"] is True
        await alice.send(room, "done typing", "d1")
        assert (await bob.sock.next("chat:typing"))["typing"] is False
        # Leaving ends typing.
        await alice.sock.call("chat:typing", {"room_id": room, "typing": True})
        assert (await bob.sock.next("chat:typing"))["typing"] is True
        await alice.sock.close()
        assert (await bob.sock.next("chat:typing"))["typing"] is False


async def test_typing_outside_room_refused(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob", connect=False)
    mallory = await person(server, "mallory")
    room = await alice.direct(bob)
    ack = await mallory.sock.call("chat:typing", {"room_id": room, "typing": True})
    assert ack["error"]["code"] == "not_found"


async def test_text_rules(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"chat": {"max_text_length": 10}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        for text, cid in [
            ("", "a"),
            ("   ", "b"),
            ("x" * 11, "c"),
            ("bell\x07", "d"),
            ("nul\x00", "e"),
            ("esc\x1b[31m", "f"),
        ]:
            ack = await alice.send(room, text, cid)
            assert ack["ok"] is False, text
            assert ack["error"]["code"] == "invalid_request"
        ok = await alice.send(room, "two\nlines", "g")
        assert ok["ok"] and ok["message"]["text"] == "two\nlines"
        for cid in ["", "x" * 65, "has space", "slash/id"]:
            assert (await alice.send(room, "t", cid))["ok"] is False, cid
        assert alice.sock.sio.connected


async def test_room_list_order_follows_activity(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob", connect=False)
    direct = await alice.direct(bob)
    await alice.send(direct, "older activity", "o1")
    group = (await alice.post("/api/rooms", {"name": "New", "member_ids": [bob.id]})).json()
    ids = [r["id"] for r in (await alice.get("/api/rooms")).json()["rooms"]]
    assert ids == [group["room"]["id"], direct]  # a new empty room counts from its creation
    await alice.send(direct, "newer activity", "o2")
    ids = [r["id"] for r in (await alice.get("/api/rooms")).json()["rooms"]]
    assert ids == [direct, group["room"]["id"]]
