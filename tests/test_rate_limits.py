"""Rate limits: token buckets per user and event class, typed refusals, abuse disconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.config import RateLimitsConfig
from appliance.services.ratelimit import EventClass, MemoryRateLimiter
from tests.support import running_server
from tests.test_chat import person


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_bucket_refills_at_its_rate() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(RateLimitsConfig(chat_rate=2, chat_burst=3), clock)
    results = [(await limiter.take(1, EventClass.CHAT)).allowed for _ in range(4)]
    assert results == [True, True, True, False]
    refused = await limiter.take(1, EventClass.CHAT)
    assert 0 < refused.retry_after <= 0.5
    clock.now += 0.5
    assert (await limiter.take(1, EventClass.CHAT)).allowed
    # Other users and other classes have their own buckets.
    assert (await limiter.take(2, EventClass.CHAT)).allowed
    assert (await limiter.take(1, EventClass.TYPING)).allowed


async def test_abuse_needs_sustained_pushing() -> None:
    clock = FakeClock()
    config = RateLimitsConfig(chat_rate=10, chat_burst=10, abuse_factor=3, abuse_window=10)
    limiter = MemoryRateLimiter(config, clock)
    # At the allowed rate forever: never abusive.
    for _ in range(2000):
        decision = await limiter.take(1, EventClass.CHAT)
        assert not decision.abusive
        clock.now += 0.1
    # Pushing at 5x the rate: abusive within the window.
    flagged_after = None
    for step in range(10_000):
        if (await limiter.take(1, EventClass.CHAT)).abusive:
            flagged_after = step * 0.02
            break
        clock.now += 0.02
    assert flagged_after is not None and flagged_after < 30


async def test_over_the_limit_is_refused_and_told(tmp_path: Path) -> None:
    overrides = {"rate_limits": {"chat_rate": 0.5, "chat_burst": 3}}
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        acks = [await alice.send(room, f"m{i}", f"c{i}") for i in range(4)]
        assert [a["ok"] for a in acks] == [True, True, True, False]
        error = acks[3]["error"]
        assert error["code"] == "rate_limited"
        assert 0 < error["retry_after"] <= 2
        notice = await alice.sock.next("rate_limited")
        assert notice["event"] == "chat:message" and notice["retry_after"] > 0
        # Nothing was stored for the refused one.
        history = await alice.get(f"/api/rooms/{room}/messages")
        assert len(history.json()["messages"]) == 3
        assert alice.sock.sio.connected


async def test_limits_are_per_user_across_tabs_and_reconnects(tmp_path: Path) -> None:
    overrides = {"rate_limits": {"chat_rate": 0.1, "chat_burst": 2}}
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        tab2 = await alice.tab()
        assert (await alice.send(room, "a", "a1"))["ok"]
        assert (await alice.send(room, "b", "a2", sock=tab2))["ok"]
        assert (await alice.send(room, "c", "a3"))["error"]["code"] == "rate_limited"
        # Reconnecting is not a way around it.
        for client in list(alice.sockets):
            await client.close()
        alice.sockets.clear()
        fresh = await alice.tab()
        assert (await alice.send(room, "d", "a4", sock=fresh))["error"]["code"] == "rate_limited"


async def test_bucket_refills_on_the_server(tmp_path: Path) -> None:
    overrides = {"rate_limits": {"chat_rate": 20, "chat_burst": 1}}
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        assert (await alice.send(room, "a", "r1"))["ok"]
        refused = await alice.send(room, "b", "r2")
        assert refused["ok"] is False
        await asyncio.sleep(refused["error"]["retry_after"] + 0.05)
        assert (await alice.send(room, "b", "r2"))["ok"]


async def test_abuser_is_disconnected(tmp_path: Path) -> None:
    overrides = {
        "rate_limits": {"chat_rate": 1, "chat_burst": 2, "abuse_factor": 2, "abuse_window": 1},
        "web": {"presence_grace": 0},
    }
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        # Budget is 1*1+2 = 3 events, abuse after 2x that; push far more without waiting.
        for i in range(20):
            if not alice.sock.sio.connected:
                break
            await alice.sock.sio.emit(
                "chat:message", {"room_id": room, "text": "spam", "client_msg_id": f"s{i}"}
            )
        close = await alice.sock.next("session:close")
        assert close["reason"] == "rate_limited"
        await asyncio.wait_for(alice.sock.disconnected.wait(), 5)
        assert bob.sock.sio.connected


async def test_typing_is_dropped_quietly(tmp_path: Path) -> None:
    overrides = {"rate_limits": {"typing_rate": 0.1, "typing_burst": 1}}
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob", connect=False)
        room = await alice.direct(bob)
        assert (await alice.sock.call("chat:typing", {"room_id": room, "typing": True}))["ok"]
        dropped = await alice.sock.call("chat:typing", {"room_id": room, "typing": False})
        assert dropped["error"]["code"] == "rate_limited"
        assert (await alice.sock.call("presence:list"))["ok"]
        assert [n for n, _ in alice.sock.drain() if n == "rate_limited"] == []
