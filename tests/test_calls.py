"""The call state machine and the signaling relay, against the real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningServer, running_server
from tests.test_chat import Person, person

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
OFFER = {"type": "offer", "sdp": SDP}
ANSWER = {"type": "answer", "sdp": SDP}
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


async def start_call(caller: Person, callee: Person, **media: bool) -> str:
    ack = await caller.sock.call(
        "call:start", {"callee_id": callee.id, "media": {"audio": True, "video": True, **media}}
    )
    assert ack["ok"], ack
    return str(ack["call_id"])


async def active_call(caller: Person, callee: Person) -> str:
    call_id = await start_call(caller, callee)
    await callee.sock.next("call:incoming")
    assert (await callee.sock.call("call:accepted", {"call_id": call_id}))["ok"]
    assert await caller.sock.next("call:accepted") == {"call_id": call_id}
    return call_id


async def test_ringing_reaches_every_tab_and_one_answers(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    bob_tab2 = await bob.tab()
    call_id = await start_call(alice, bob, video=False)
    incoming = {
        "call_id": call_id,
        "caller": {"user_id": alice.id, "username": "alice"},
        "media": {"audio": True, "video": False},
    }
    assert await bob.sock.next("call:incoming") == incoming
    assert await bob_tab2.next("call:incoming") == incoming
    assert (await bob_tab2.call("call:accepted", {"call_id": call_id}))["ok"]
    assert await alice.sock.next("call:accepted") == {"call_id": call_id}
    assert await bob.sock.next("call:end") == {"call_id": call_id, "reason": "answered_elsewhere"}
    again = await bob.sock.call("call:accepted", {"call_id": call_id})
    assert again["error"]["code"] == "conflict"
    # Signaling now flows between alice's socket and bob's second tab only.
    assert (await alice.sock.call("webrtc:offer", {"to": 999, "offer": OFFER}))["ok"]
    relayed = await bob_tab2.next("webrtc:offer")
    assert relayed == {"call_id": call_id, "from": alice.id, "offer": OFFER}
    stray = await bob.sock.call("webrtc:answer", {"to": alice.id, "answer": ANSWER})
    assert stray["error"]["code"] == "forbidden"
    assert (await bob_tab2.call("webrtc:answer", {"call_id": call_id, "answer": ANSWER}))["ok"]
    assert (await alice.sock.next("webrtc:answer"))["answer"] == ANSWER
    for sender, receiver in ((alice.sock, bob_tab2), (bob_tab2, alice.sock)):
        assert (await sender.call("webrtc:ice-candidate", {"candidate": CANDIDATE}))["ok"]
        got = await receiver.next("webrtc:ice-candidate")
        assert got["candidate"] == CANDIDATE
    assert (await alice.sock.call("webrtc:ice-candidate", {"candidate": None}))["ok"]
    assert (await bob_tab2.next("webrtc:ice-candidate"))["candidate"] is None


async def test_callee_offline_unknown_and_self(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob", connect=False)
    offline = await alice.sock.call("call:start", {"callee_id": bob.id})
    assert offline["error"]["code"] == "unavailable"
    unknown = await alice.sock.call("call:start", {"callee_id": 999})
    assert unknown["error"]["code"] == "not_found"
    own = await alice.sock.call("call:start", {"callee_id": alice.id})
    assert own["error"]["code"] == "invalid_request"
    mute = await alice.sock.call(
        "call:start", {"callee_id": bob.id, "media": {"audio": False, "video": False}}
    )
    assert mute["error"]["code"] == "invalid_request"


async def test_busy_callee(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    carol = await person(server, "carol")
    await active_call(alice, bob)
    call_id = await start_call(carol, bob)
    assert await carol.sock.next("call:rejected") == {"call_id": call_id, "reason": "busy"}
    # The caller in a call cannot start another.
    second = await alice.sock.call("call:start", {"callee_id": carol.id})
    assert second["error"]["code"] == "conflict"
    assert [n for n, _ in bob.sock.drain() if n == "call:incoming"] == []


async def test_ring_timeout(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"calls": {"ring_timeout": 0.3}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        call_id = await start_call(alice, bob)
        await bob.sock.next("call:incoming")
        expected = {"call_id": call_id, "reason": "timeout"}
        assert await alice.sock.next("call:end") == expected
        assert await bob.sock.next("call:end") == expected
        late = await bob.sock.call("call:accepted", {"call_id": call_id})
        assert late["error"]["code"] == "not_found"


async def test_reject_and_cancel(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    bob_tab2 = await bob.tab()
    call_id = await start_call(alice, bob)
    await bob.sock.next("call:incoming")
    forbidden = await alice.sock.call("call:rejected", {"call_id": call_id})
    assert forbidden["error"]["code"] == "forbidden"
    assert (await bob.sock.call("call:rejected", {"call_id": call_id}))["ok"]
    assert await alice.sock.next("call:rejected") == {"call_id": call_id, "reason": "declined"}
    assert await bob_tab2.next("call:end") == {"call_id": call_id, "reason": "declined"}
    # The caller cancels a ringing call.
    call_id = await start_call(alice, bob)
    await bob.sock.next("call:incoming")
    assert (await alice.sock.call("call:end", {"call_id": call_id}))["ok"]
    cancelled = {"call_id": call_id, "reason": "cancelled"}
    assert await bob.sock.next("call:end") == cancelled
    assert await bob_tab2.next("call:end") == cancelled


@pytest.mark.parametrize("ender", ["caller", "callee"])
async def test_end_from_either_side(server: RunningServer, ender: str) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    call_id = await active_call(alice, bob)
    one, other = (alice, bob) if ender == "caller" else (bob, alice)
    assert (await one.sock.call("call:end", {"call_id": call_id}))["ok"]
    assert await other.sock.next("call:end") == {"call_id": call_id, "reason": "hangup"}
    after = await other.sock.call("webrtc:offer", {"offer": OFFER})
    assert after["error"]["code"] == "forbidden"
    # Both are free to call again.
    assert await start_call(other, one)


async def test_outsiders_cannot_signal(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    mallory = await person(server, "mallory")
    call_id = await start_call(alice, bob)
    await bob.sock.next("call:incoming")
    early = await alice.sock.call("webrtc:offer", {"call_id": call_id, "offer": OFFER})
    assert early["error"]["code"] == "forbidden"  # not answered yet
    body: object
    for event, body in (
        ("call:accepted", {"call_id": call_id}),
        ("call:end", {"call_id": call_id}),
        ("call:rejected", {"call_id": call_id}),
    ):
        assert (await mallory.sock.call(event, body))["error"]["code"] == "not_found"
    await bob.sock.call("call:accepted", {"call_id": call_id})
    for event, body in (
        ("webrtc:offer", {"to": bob.id, "offer": OFFER}),
        ("webrtc:answer", {"to": alice.id, "answer": ANSWER}),
        ("webrtc:ice-candidate", {"to": bob.id, "candidate": CANDIDATE}),
        ("webrtc:offer", {"call_id": call_id, "offer": OFFER}),
    ):
        assert (await mallory.sock.call(event, body))["error"]["code"] == "forbidden"
    wrong_id = await alice.sock.call("webrtc:offer", {"call_id": "nope", "offer": OFFER})
    assert wrong_id["error"]["code"] == "forbidden"
    assert (await bob.sock.call("presence:list"))["ok"]
    assert [n for n, _ in bob.sock.drain() if n.startswith("webrtc:")] == []


async def test_malformed_signaling(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    await active_call(alice, bob)
    for event, body in (
        ("webrtc:offer", {"offer": {"type": "offer", "sdp": "hello, not sdp at all"}}),
        ("webrtc:offer", {"offer": {"type": "rollback", "sdp": SDP}}),
        ("webrtc:offer", {"offer": {"type": "offer", "sdp": SDP + "a=x\r\n" * 30_000}}),
        ("webrtc:offer", {"offer": "v=0"}),
        ("webrtc:offer", {}),
        ("webrtc:answer", {"answer": {"type": "answer"}}),
        ("webrtc:ice-candidate", {"candidate": {"candidate": "rm -rf /", "sdpMid": "0"}}),
        ("webrtc:ice-candidate", {"candidate": {"candidate": "candidate:" + "x" * 2000}}),
        ("webrtc:ice-candidate", {}),
        ("call:start", {"callee_id": "2"}),
        ("call:accepted", {"call_id": 5}),
        ("call:end", {"call_id": "x" * 100}),
    ):
        ack = await alice.sock.call(event, body)
        assert ack["ok"] is False, (event, body)
        assert ack["error"]["code"] == "invalid_request", (event, ack)
    assert [n for n, _ in bob.sock.drain() if n.startswith("webrtc:")] == []


async def test_disconnect_grace_resume_and_ice_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"calls": {"reconnect_grace": 5}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        call_id = await active_call(alice, bob)
        await bob.sock.close()
        assert await alice.sock.next("call:reconnecting") == {
            "call_id": call_id,
            "user_id": bob.id,
        }
        waiting = await alice.sock.call("webrtc:offer", {"offer": OFFER})
        assert waiting["error"]["code"] == "unavailable"
        bob.sockets.clear()
        fresh = await bob.tab()
        resumed = await fresh.call("call:resume", {"call_id": call_id})
        assert resumed == {
            "ok": True,
            "call_id": call_id,
            "role": "callee",
            "peer": {"user_id": alice.id, "username": "alice"},
            "media": {"audio": True, "video": True},
        }
        assert await alice.sock.next("call:resumed") == {"call_id": call_id, "user_id": bob.id}
        restart = {"type": "offer", "sdp": SDP + "a=ice-ufrag:new1\r\n"}
        assert (await alice.sock.call("webrtc:offer", {"offer": restart}))["ok"]
        assert (await fresh.next("webrtc:offer"))["offer"] == restart
        # Nobody else can take the call over.
        mallory = await person(server, "mallory")
        stolen = await mallory.sock.call("call:resume", {"call_id": call_id})
        assert stolen["error"]["code"] == "not_found"
        second_tab = await bob.tab()
        taken = await second_tab.call("call:resume", {"call_id": call_id})
        assert taken["error"]["code"] == "conflict"


async def test_grace_expiry_ends_the_call(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"calls": {"reconnect_grace": 0.3}}) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        call_id = await active_call(alice, bob)
        await alice.sock.close()
        assert await bob.sock.next("call:reconnecting") == {
            "call_id": call_id,
            "user_id": alice.id,
        }
        assert await bob.sock.next("call:end") == {"call_id": call_id, "reason": "disconnected"}


async def test_disconnects_while_ringing(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    call_id = await start_call(alice, bob)
    await bob.sock.next("call:incoming")
    await alice.sock.close()
    assert await bob.sock.next("call:end") == {"call_id": call_id, "reason": "cancelled"}
    carol = await person(server, "carol")
    call_id = await start_call(carol, bob)
    await bob.sock.next("call:incoming")
    await bob.sock.close()
    assert await carol.sock.next("call:end") == {"call_id": call_id, "reason": "unavailable"}


async def test_call_history(server: RunningServer) -> None:
    alice = await person(server, "alice")
    bob = await person(server, "bob")
    call_id = await active_call(alice, bob)
    await alice.sock.call("call:end", {"call_id": call_id})
    await bob.sock.next("call:end")
    declined = await start_call(bob, alice)
    await alice.sock.next("call:incoming")
    await alice.sock.call("call:rejected", {"call_id": declined})
    await bob.sock.next("call:rejected")
    mine = (await alice.get("/api/calls")).json()["calls"]
    assert [c["id"] for c in mine] == [declined, call_id]
    latest, first = mine
    assert latest["direction"] == "incoming" and latest["end_reason"] == "declined"
    assert latest["peer"] == {"user_id": bob.id, "username": "bob"}
    assert latest["answered_at"] is None
    assert first["direction"] == "outgoing" and first["end_reason"] == "hangup"
    assert first["answered_at"] >= first["started_at"]
    assert first["ended_at"] >= first["answered_at"]
    assert first["media"] == {"audio": True, "video": True}
    carol = await person(server, "carol", connect=False)
    assert (await carol.get("/api/calls")).json()["calls"] == []
    assert (await alice.get("/api/calls", params={"limit": 0})).status_code == 400


async def test_open_calls_are_closed_on_restart(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d") as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        await active_call(alice, bob)
    async with running_server(tmp_path / "d") as server:
        token = await server.token("alice")
        calls = (
            await server.http.get("/api/calls", headers={"Authorization": f"Bearer {token}"})
        ).json()["calls"]
        assert calls[0]["end_reason"] == "server_restart"


async def test_signaling_is_rate_limited(tmp_path: Path) -> None:
    overrides = {"rate_limits": {"signaling_rate": 0.1, "signaling_burst": 3}}
    async with running_server(tmp_path / "d", overrides) as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        call_id = await active_call(alice, bob)
        acks: list[Any] = []
        for _ in range(3):
            acks.append(await alice.sock.call("webrtc:ice-candidate", {"candidate": CANDIDATE}))
        codes = [a.get("error", {}).get("code") for a in acks]
        assert "rate_limited" in codes
        assert call_id
