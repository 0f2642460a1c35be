"""Presence: online/offline once per user, many tabs, reload grace, ping timeout, the directory."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import aiosqlite

from tests.support import RunningServer, running_server


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_online_and_offline_between_two_users(server: RunningServer) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice = await server.user_socket("alice")
    bob = await server.connect(await server.token("bob"))
    snapshot = await bob.next("presence:list")
    assert snapshot == {
        "users": [
            {"user_id": alice_id, "username": "alice"},
            {"user_id": bob_id, "username": "bob"},
        ]
    }
    assert await alice.next("user_online") == {"user_id": bob_id, "username": "bob"}
    before = time.time()
    await bob.close()
    offline = await alice.next("user_offline")
    assert offline["user_id"] == bob_id
    assert offline["username"] == "bob"
    assert before - 1 <= offline["last_seen"] <= time.time() + 1
    # Nobody hears about themselves.
    assert all(name not in {"user_online", "user_offline"} for name, _ in bob.drain())


async def test_many_tabs_announce_once(server: RunningServer) -> None:
    await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice = await server.user_socket("alice")
    tab1 = await server.user_socket("bob")
    assert (await alice.next("user_online"))["user_id"] == bob_id
    tab2 = await server.user_socket("bob")
    await tab1.close()
    # A probe round-trip on alice's socket: anything emitted before it would have arrived.
    assert (await alice.call("presence:list"))["users"][1]["user_id"] == bob_id
    assert [n for n, _ in alice.drain() if n.startswith("user_")] == []
    await tab2.close()
    assert (await alice.next("user_offline"))["user_id"] == bob_id


async def test_reload_within_grace_does_not_flap(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"web": {"presence_grace": 1.0}}) as server:
        await server.add_user("alice")
        bob_id = await server.add_user("bob")
        alice = await server.user_socket("alice")
        token = await server.token("bob")
        bob = await server.connect(token)
        assert (await alice.next("user_online"))["user_id"] == bob_id
        await bob.close()
        # Still listed as online during the grace period.
        listed = await alice.call("presence:list")
        assert bob_id in [u["user_id"] for u in listed["users"]]
        again = await server.connect(token)
        await again.next("presence:list")
        await asyncio.sleep(1.3)  # past the grace period: an offline would have fired by now
        assert [n for n, _ in alice.drain() if n.startswith("user_")] == []
        await again.close()
        offline = await alice.next("user_offline", timeout=5)
        assert offline["user_id"] == bob_id


async def test_ping_timeout_drops_a_silent_client(tmp_path: Path) -> None:
    overrides = {"web": {"presence_grace": 0, "ping_interval": 1, "ping_timeout": 1}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("alice")
        bob_id = await server.add_user("bob")
        alice = await server.user_socket("alice")
        token = await server.token("bob")
        ws_url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
            opening = await ws.receive_str()
            assert opening.startswith("0")
            await ws.send_str("40" + json.dumps({"token": token}))
            assert (await ws.receive_str()).startswith("40")
            assert (await alice.next("user_online"))["user_id"] == bob_id
            # This client never answers the server's pings ("2"): the server must drop it.
            offline = await alice.next("user_offline", timeout=8)
            assert offline["user_id"] == bob_id
            assert alice.sio.connected  # the answering client was kept


async def test_directory_lists_presence(server: RunningServer) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice_token = await server.token("alice")
    alice = await server.connect(alice_token)
    await alice.next("presence:list")
    users = (await server.http.get("/api/users", headers=bearer(alice_token))).json()["users"]
    assert users == [
        {
            "user_id": alice_id,
            "username": "alice",
            "is_admin": False,
            "online": True,
            "last_seen": None,
        },
        {
            "user_id": bob_id,
            "username": "bob",
            "is_admin": False,
            "online": False,
            "last_seen": None,
        },
    ]
    bob = await server.user_socket("bob")
    await bob.close()
    await alice.next("user_offline")
    users = (await server.http.get("/api/users", headers=bearer(alice_token))).json()["users"]
    assert users[1]["online"] is False
    assert users[1]["last_seen"] is not None


async def test_revoked_login_goes_offline(server: RunningServer) -> None:
    await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice = await server.user_socket("alice")
    tokens = await server.login("bob")
    bob = await server.connect(tokens["access_token"])
    await alice.next("user_online")
    await server.http.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert (await bob.next("session:close"))["reason"] == "token_revoked"
    assert (await alice.next("user_offline"))["user_id"] == bob_id


async def test_shutdown_records_last_seen(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server:
        await server.add_user("alice")
        await server.user_socket("alice")
    # The server has stopped; read the database directly.
    async with (
        aiosqlite.connect(tmp_path / "d" / "appliance.db") as conn,
        conn.execute("SELECT last_seen FROM users WHERE username='alice'") as cur,
    ):
        row = await cur.fetchone()
    assert row is not None and row[0] is not None


async def test_the_list_stays_sorted_and_exact_as_users_come_and_go(tmp_path: Path) -> None:
    """The online list is kept sorted incrementally (not rebuilt per connect): after a mix of
    connects, tabs, leaves and returns it still equals the sorted set of who is online."""
    async with running_server(tmp_path / "d", {"web": {"presence_grace": 0}}) as server:
        names = ["mia", "Bea", "zoe", "adam", "Carl", "bob"]
        for name in names:
            await server.add_user(name)
        watcher_name = "watcher"
        await server.add_user(watcher_name)
        watcher = await server.user_socket(watcher_name)
        sockets = {name: await server.user_socket(name) for name in names}
        second_tab = await server.user_socket("zoe")
        for name in ("Bea", "adam"):
            await sockets[name].close()
            assert (await watcher.next("user_offline"))["username"] == name
        sockets["adam"] = await server.user_socket("adam")
        assert (await watcher.next("user_online"))["username"] == "adam"
        await sockets["zoe"].close()  # zoe keeps a second tab: still online
        online = sorted(["mia", "zoe", "adam", "Carl", "bob", watcher_name], key=str.casefold)
        listed = await watcher.call("presence:list")
        assert [u["username"] for u in listed["users"]] == online
        await server.user_socket("mia")  # another tab of someone online: no change
        await second_tab.close()
        assert (await watcher.next("user_offline"))["username"] == "zoe"
        listed = await watcher.call("presence:list")
        assert [u["username"] for u in listed["users"]] == [n for n in online if n != "zoe"]
