"""Real calls: two aiortc peers signal through the appliance as the design document says and
exchange audio and video, through the managed coturn (relay only) or directly (host only)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import RunningServer
from tests.test_calls import start_call
from tests.test_chat import Person, person
from tests.webrtc_peer import Peer, loopback_only


async def ice_for(who: Person) -> dict[str, Any]:
    response = await who.get("/api/turn")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def call_and_hang_up(server: RunningServer, *, relay: bool) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    call_id = await start_call(alice, bob)
    incoming = await bob.sock.next("call:incoming")
    assert incoming["call_id"] == call_id
    bob_peer = Peer(bob.sock, await ice_for(bob) if relay else None, relay=relay)
    assert (await bob.sock.call("call:accepted", {"call_id": call_id}))["ok"]
    assert await alice.sock.next("call:accepted") == {"call_id": call_id}
    alice_peer = Peer(alice.sock, await ice_for(alice) if relay else None, relay=relay)
    stop = asyncio.Event()
    pumps = [asyncio.create_task(p.pump(stop)) for p in (alice_peer, bob_peer)]
    try:
        await alice_peer.offer()
        async with asyncio.timeout(30):
            await alice_peer.connected.wait()
            await bob_peer.connected.wait()
            await alice_peer.got_frames.wait()
            await bob_peer.got_frames.wait()
        assert alice_peer.pc.connectionState == bob_peer.pc.connectionState == "connected"
        wanted = "typ relay" if relay else "typ host"
        for peer in (alice_peer, bob_peer):
            assert peer.sent_candidates, "no candidates were trickled"
            assert all(wanted in c["candidate"] for c in peer.sent_candidates)
        # Hang up: the other side hears call:end and both close.
        assert (await alice.sock.call("call:end", {"call_id": call_id}))["ok"]
        await alice_peer.close()
        async with asyncio.timeout(10):
            await pumps[1]
        assert bob_peer.ended == {"call_id": call_id, "reason": "hangup"}
        for peer in (alice_peer, bob_peer):
            assert peer.pc.connectionState == "closed"
            assert peer.pc.signalingState == "closed"
            assert peer.pc.iceConnectionState == "closed"
    finally:
        stop.set()
        await asyncio.gather(*pumps, return_exceptions=True)
        await alice_peer.close()
        await bob_peer.close()


@pytest.mark.timeout(90)
async def test_call_through_managed_turn_relay(
    turn_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_only(monkeypatch)
    await call_and_hang_up(turn_server, relay=True)


@pytest.mark.timeout(90)
async def test_call_with_host_candidates_only(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_only(monkeypatch)
    await call_and_hang_up(server, relay=False)
