"""Call recording, the web side, against the real server and a real store, with a scripted
recorder: a Socket.IO client holding the service key that answers as the recorder would."""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio
from minio import Minio
from minio.error import S3Error

from appliance.adapters.service_key import ensure_service_key
from appliance.storage.recordings import RecordingRepository
from tests.store_support import running_store, storage_overrides
from tests.support import RunningServer, make_settings, running_server
from tests.test_calls import ANSWER, CANDIDATE, OFFER, active_call, start_call
from tests.test_chat import Person, person

WEBM = b"\x1aE\xdf\xa3" + bytes(range(256)) * 16
DAY = 86_400.0


class Recorder:
    """The recorder service, scripted: acks `recorder:start` with `answer`, queues the rest."""

    def __init__(self, server: RunningServer, answer: dict[str, Any] | None = None) -> None:
        self.client = server.client()
        self.answer: dict[str, Any] = answer or {"ok": True}
        self.key = ensure_service_key(server.settings.data_dir)
        self.gate: asyncio.Event | None = None  # when set: the ack waits for it
        self.client.sio.on("recorder:start", self._start)

    async def _start(self, data: Any) -> dict[str, Any]:
        await self.client.events.put(("recorder:start", data))
        if self.gate is not None:
            await self.gate.wait()
        return self.answer

    async def connect(self, key: str | None = None, **kwargs: Any) -> Recorder:
        auth = {"service": "recorder", "key": key or self.key}
        await self.client.connect(None, auth=auth, **kwargs)
        return self

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        return await self.client.next(event, timeout)

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data)


class World:
    def __init__(self, server: RunningServer, store: subprocess.Popen[bytes] | None = None) -> None:
        self.server = server
        self.store = store
        config = server.settings.config.storage
        self.minio = Minio(
            config.address,
            config.access_key,
            config.secret_key.get_secret_value(),
            secure=False,
            region=config.region,
        )
        self.bucket = config.bucket

    async def recorder(self, answer: dict[str, Any] | None = None) -> Recorder:
        return await Recorder(self.server, answer).connect()

    async def upload(self, key: str, data: bytes = WEBM) -> None:
        await asyncio.to_thread(
            self.minio.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type="video/webm",
        )

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.minio.stat_object, self.bucket, key)
        except S3Error as exc:
            assert exc.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")
            return False
        return True


def enabled(**recording: Any) -> dict[str, dict[str, Any]]:
    return {
        "web": {"presence_grace": 0},
        "recording": {"enabled": True, "host_addresses": ["127.0.0.1"], **recording},
        "storage": storage_overrides(),
    }


@asynccontextmanager
async def world(data_dir: Path, overrides: dict[str, dict[str, Any]]) -> AsyncIterator[World]:
    settings = make_settings(data_dir, overrides)
    async with running_store(settings) as store, running_server(data_dir, overrides) as server:
        yield World(server, store)


@pytest.fixture
async def rec(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path / "d", enabled()) as w:
        yield w


async def in_call(w: World) -> tuple[Person, Person, str]:
    alice = await person(w.server, "alice")
    bob = await person(w.server, "bob")
    return alice, bob, await active_call(alice, bob)


def by(someone: Person) -> dict[str, Any]:
    return {"user_id": someone.id, "username": someone.name}


async def recording(
    recorder: Recorder, alice: Person, bob: Person, call_id: str
) -> tuple[str, dict[str, Any]]:
    """Alice starts recording; the recorder reports media from both: returns the id and the
    `recorder:start` the recorder received."""
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["ok"], ack
    recording_id = str(ack["recording_id"])
    start = await recorder.next("recorder:start")
    starting = {
        "call_id": call_id,
        "recording_id": recording_id,
        "state": "starting",
        "by": by(alice),
    }
    assert await alice.sock.next("call:recording") == starting
    assert await bob.sock.next("call:recording") == starting
    state = {"call_id": call_id, "recording_id": recording_id, "state": "recording"}
    assert (await recorder.call("recorder:state", state))["ok"]
    live = {**starting, "state": "recording"}
    assert await alice.sock.next("call:recording") == live
    assert await bob.sock.next("call:recording") == live
    return recording_id, start


async def done(w: World, recorder: Recorder, call_id: str, recording_id: str) -> Any:
    return await recorder.call(
        "recorder:done",
        {
            "call_id": call_id,
            "recording_id": recording_id,
            "key": f"recordings/{recording_id}.webm",
            "size": len(WEBM),
            "duration": 5.2,
            "content_type": "video/webm",
            "started_at": 1000.0,
            "ended_at": 1005.2,
        },
    )


async def stopped(w: World, recorder: Recorder, alice: Person, bob: Person) -> tuple[str, str]:
    """A recording made, stopped and uploaded to the store, not yet reported done."""
    call_id = await active_call(alice, bob)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    assert (await bob.sock.call("call:record", {"call_id": call_id, "action": "stop"}))["ok"]
    await recorder.next("recorder:stop")
    for someone in (alice, bob):
        assert (await someone.sock.next("call:recording"))["state"] == "stopped"
    await w.upload(f"recordings/{recording_id}.webm")
    return call_id, recording_id


# -- start and stop -----------------------------------------------------------------------


async def test_start_and_stop_reach_both_sides_and_the_recorder(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, start = await recording(recorder, alice, bob, call_id)
    assert start == {
        "call_id": call_id,
        "recording_id": recording_id,
        "participants": [by(alice), by(bob)],
        "media": {"audio": True, "video": True},
    }
    # A replayed start (from either side) is the same recording.
    for someone in (alice, bob):
        again = await someone.sock.call("call:record", {"call_id": call_id, "action": "start"})
        assert again == {
            "ok": True,
            "call_id": call_id,
            "recording_id": recording_id,
            "state": "recording",
        }
    # Bob stops it: both sides are told who stopped it, the recorder is told to stop.
    ack = await bob.sock.call("call:record", {"call_id": call_id, "action": "stop"})
    assert ack == {"ok": True, "call_id": call_id, "recording_id": recording_id, "state": "stopped"}
    assert await recorder.next("recorder:stop") == {
        "call_id": call_id,
        "recording_id": recording_id,
        "reason": "stopped",
    }
    stop = {"call_id": call_id, "recording_id": recording_id, "state": "stopped", "by": by(bob)}
    assert await alice.sock.next("call:recording") == stop
    assert await bob.sock.next("call:recording") == stop
    # A replayed stop is fine and changes nothing.
    again = await alice.sock.call("call:record", {"call_id": call_id, "action": "stop"})
    assert again == {"ok": True, "call_id": call_id, "recording_id": None, "state": "stopped"}
    # Only one start ever went to the recorder; the processing recording is listed.
    assert recorder.client.drain() == []
    listed = (await alice.get("/api/recordings")).json()["recordings"]
    assert [(r["id"], r["status"]) for r in listed] == [(recording_id, "processing")]
    assert (await alice.get(f"/api/recordings/{recording_id}")).status_code == 409
    health = (await rec.server.http.get("/healthz")).json()
    assert health["services"]["recorder"] == {"state": "up"}


async def test_who_may_record(rec: World) -> None:
    await rec.recorder()
    alice, _bob, call_id = await in_call(rec)
    carol = await person(rec.server, "carol")
    alice_tab2 = await alice.tab()
    cases: list[tuple[Any, Any, str]] = [
        (carol.sock, {"call_id": call_id, "action": "start"}, "forbidden"),
        (alice.sock, {"call_id": "no-such-call", "action": "start"}, "forbidden"),
        (alice_tab2, {"call_id": call_id, "action": "start"}, "forbidden"),
        (alice.sock, {"call_id": call_id, "action": "pause"}, "invalid_request"),
        (alice.sock, {"call_id": call_id}, "invalid_request"),
        (alice.sock, {"call_id": call_id, "action": "start", "x": 1}, "invalid_request"),
        (alice.sock, {"call_id": "c" * 65, "action": "start"}, "invalid_request"),
        (alice.sock, {"call_id": 5, "action": "start"}, "invalid_request"),
        (alice.sock, ["not", "an", "object"], "invalid_request"),
    ]
    for sock, payload, code in cases:
        ack = await sock.call("call:record", payload)
        assert ack["ok"] is False and ack["error"]["code"] == code, (payload, ack)
    # A ringing call cannot be recorded yet.
    dave = await person(rec.server, "dave")
    erin = await person(rec.server, "erin")
    ringing = await start_call(dave, erin)
    ack = await dave.sock.call("call:record", {"call_id": ringing, "action": "start"})
    assert ack["error"]["code"] == "conflict"
    await alice.sock.call("presence:list", {})
    assert all(name != "call:recording" for name, _ in alice.sock.drain())


async def test_recording_disabled(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", {"web": {"presence_grace": 0}}) as server:
        await Recorder(server).connect()
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        call_id = await active_call(alice, bob)
        ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
        assert ack["ok"] is False
        assert ack["error"]["code"] == "recording_disabled"


async def test_no_recorder_is_unavailable(rec: World) -> None:
    alice, bob, call_id = await in_call(rec)
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["error"]["code"] == "unavailable"
    response = await rec.server.http.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["services"]["recorder"] == {"state": "down"}
    # Nothing was started: stop is a no-op.
    ack = await bob.sock.call("call:record", {"call_id": call_id, "action": "stop"})
    assert ack == {"ok": True, "call_id": call_id, "recording_id": None, "state": "stopped"}


async def test_recorder_refusing_is_unavailable_then_a_retry_works(rec: World) -> None:
    nack = {"ok": False, "error": {"code": "unavailable", "message": "at max_concurrent"}}
    recorder = await rec.recorder(nack)
    alice, bob, call_id = await in_call(rec)
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["error"]["code"] == "unavailable"
    assert "max_concurrent" in ack["error"]["message"]
    start = await recorder.next("recorder:start")
    failed = {
        "call_id": call_id,
        "recording_id": start["recording_id"],
        "state": "failed",
        "by": None,
        "reason": "unavailable",
    }
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    recorder.answer = {"ok": True}
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    assert recording_id != start["recording_id"]
    assert [r["id"] for r in (await bob.get("/api/recordings")).json()["recordings"]] == [
        recording_id
    ]


async def test_stop_while_the_recorder_is_asked(rec: World) -> None:
    recorder = await rec.recorder()
    recorder.gate = asyncio.Event()
    alice, bob, call_id = await in_call(rec)
    starting = asyncio.create_task(
        alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    )
    start = await recorder.next("recorder:start")
    # Bob's replayed start joins the same recording; then he stops it before the recorder acks.
    joined = await bob.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert joined["recording_id"] == start["recording_id"] and joined["state"] == "starting"
    ack = await bob.sock.call("call:record", {"call_id": call_id, "action": "stop"})
    assert ack["state"] == "stopped"
    assert (await recorder.next("recorder:stop"))["recording_id"] == start["recording_id"]
    recorder.gate.set()
    ack = await starting
    assert ack == {
        "ok": True,
        "call_id": call_id,
        "recording_id": start["recording_id"],
        "state": "stopped",
    }
    stop = await alice.sock.next("call:recording")
    assert stop["state"] == "stopped" and stop["by"] == by(bob)
    assert all(name != "call:recording" for name, _ in alice.sock.drain())


# -- the recorder's identity ----------------------------------------------------------------


async def test_service_credential_checked(rec: World) -> None:
    key = ensure_service_key(rec.server.settings.data_dir)
    for auth in (
        {"service": "recorder", "key": "0" * len(key)},
        {"service": "recorder", "key": ""},
        {"service": "recorder", "key": 12},
        {"service": "recorder"},
        {"service": "chat", "key": key},
        {"service": "recorder", "key": key[:-1]},
    ):
        client = rec.server.client()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(None, auth=auth)
        assert isinstance(client.connect_error, dict), client.connect_error
        assert client.connect_error["message"] == "token_invalid"
        assert client.connect_error["data"]["code"] == "token_invalid"
        assert key not in str(client.connect_error)
    health = (await rec.server.http.get("/healthz")).json()
    assert health["services"]["recorder"] == {"state": "down"}


async def test_unencodable_service_key_is_refused(rec: World) -> None:
    """A key JSON can carry but UTF-8 cannot (a lone surrogate): refused like any wrong key,
    not left hanging on a failed handshake."""
    client = rec.server.client()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(None, auth={"service": "recorder", "key": "\ud800"}, wait_timeout=5)
    assert isinstance(client.connect_error, dict), client.connect_error
    assert client.connect_error["data"]["code"] == "token_invalid"
    assert (await rec.recorder()).client.sio.connected


async def test_recorder_socket_is_no_user(rec: World) -> None:
    recorder = await rec.recorder()
    alice, _bob, call_id = await in_call(rec)
    for event, payload in [
        ("presence:list", {}),
        ("auth:refresh", {"token": alice.token}),
        ("chat:message", {"room_id": 1, "text": "hi", "client_msg_id": "x"}),
        ("call:start", {"callee_id": alice.id}),
        ("call:end", {"call_id": call_id}),
        ("call:record", {"call_id": call_id, "action": "start"}),
        ("webrtc:offer", {"call_id": call_id, "offer": OFFER}),
        ("recorder:offer", {"call_id": call_id, "offer": OFFER}),
        ("media:uploaded", {"media_id": "x"}),
    ]:
        ack = await recorder.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", (event, ack)
    # It got no presence and is nobody's presence.
    carol = await person(rec.server, "carol")
    assert (await alice.sock.next("user_online"))["username"] == "carol"
    await carol.sock.close()
    assert (await alice.sock.next("user_offline"))["user_id"] == carol.id
    assert recorder.client.drain() == []
    users = (await alice.sock.call("presence:list", {}))["users"]
    assert sorted(u["username"] for u in users) == ["alice", "bob"]


async def test_user_socket_cannot_speak_for_the_recorder(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    ref = {"call_id": call_id, "recording_id": recording_id}
    for event, payload in [
        ("recorder:answer", {**ref, "user_id": alice.id, "answer": ANSWER}),
        ("recorder:state", {**ref, "state": "recording"}),
        ("recorder:failed", {**ref, "reason": "disk_full"}),
        ("recorder:done", {**ref, "key": "k", "size": 1, "duration": 1}),
    ]:
        ack = await alice.sock.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", (event, ack)
    # The recorder-shaped ICE message from a user is not the participant's shape.
    ack = await alice.sock.call(
        "recorder:ice-candidate", {**ref, "user_id": bob.id, "candidate": CANDIDATE}
    )
    assert ack["error"]["code"] == "invalid_request"
    # The recording is untouched.
    again = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert again["state"] == "recording"


async def test_a_new_recorder_replaces_the_old_one(rec: World) -> None:
    first = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(first, alice, bob, call_id)
    second = await rec.recorder()
    failed = {
        "call_id": call_id,
        "recording_id": recording_id,
        "state": "failed",
        "by": None,
        "reason": "recorder_lost",
    }
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    async with asyncio.timeout(5):
        await first.client.disconnected.wait()
    assert second.client.sio.connected
    # The new one takes new recordings.
    new_id, _ = await recording(second, alice, bob, call_id)
    assert new_id != recording_id


async def test_while_a_recorder_is_replaced(rec: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """While web fails the replaced recorder's recordings (held here), a start is `unavailable`
    at once (the new socket, still in its handshake, could not ack it), the replaced socket
    speaks for no recording, and afterwards the new recorder takes recordings that are not
    failed along with the old ones."""
    first = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    old_id, _ = await recording(first, alice, bob, call_id)
    held, gate = asyncio.Event(), asyncio.Event()
    fail_processing = RecordingRepository.fail_processing

    async def held_back(self: RecordingRepository, reason: str, now: float) -> int:
        if reason == "recorder_lost":
            held.set()
            await gate.wait()
        return await fail_processing(self, reason, now)

    monkeypatch.setattr(RecordingRepository, "fail_processing", held_back)
    second = Recorder(rec.server)
    connecting = asyncio.create_task(second.connect(wait_timeout=10))
    lost = {
        "call_id": call_id,
        "recording_id": old_id,
        "state": "failed",
        "by": None,
        "reason": "recorder_lost",
    }
    assert await alice.sock.next("call:recording") == lost
    assert await bob.sock.next("call:recording") == lost
    async with asyncio.timeout(5):
        await held.wait()
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
    ref = {"call_id": call_id, "recording_id": old_id}
    for event, payload in [
        ("recorder:state", {**ref, "state": "recording"}),
        ("recorder:failed", {**ref, "reason": "disk_full"}),
        ("recorder:answer", {**ref, "user_id": alice.id, "answer": ANSWER}),
    ]:
        ack = await first.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", (event, ack)
    gate.set()
    await connecting
    async with asyncio.timeout(5):
        await first.client.disconnected.wait()
    new_id, _ = await recording(second, alice, bob, call_id)
    assert (await alice.sock.call("call:record", {"call_id": call_id, "action": "stop"}))["ok"]
    await second.next("recorder:stop")
    await rec.upload(f"recordings/{new_id}.webm")
    assert (await done(rec, second, call_id, new_id))["ok"]
    assert await bob.sock.next("recording:ready") == {"recording_id": new_id, "call_id": call_id}
    listed = (await bob.get("/api/recordings")).json()["recordings"]
    assert [(r["id"], r["status"]) for r in listed] == [(new_id, "ready")]


# -- signaling between participants and the recorder ----------------------------------------


async def test_signaling_only_between_bound_socket_and_recorder(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    alice_tab2 = await alice.tab()
    carol = await person(rec.server, "carol")
    # Before recording: refused.
    ack = await alice.sock.call("recorder:offer", {"call_id": call_id, "offer": OFFER})
    assert ack["error"]["code"] == "forbidden"
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    ref = {"call_id": call_id, "recording_id": recording_id}
    # Participant -> recorder, from the bound socket only.
    assert (await alice.sock.call("recorder:offer", {"call_id": call_id, "offer": OFFER}))["ok"]
    assert await recorder.next("recorder:offer") == {**ref, "user_id": alice.id, "offer": OFFER}
    ice = {"call_id": call_id, "candidate": CANDIDATE}
    assert (await bob.sock.call("recorder:ice-candidate", ice))["ok"]
    got = await recorder.next("recorder:ice-candidate")
    assert got == {**ref, "user_id": bob.id, "candidate": CANDIDATE}
    end = {"call_id": call_id, "candidate": None}
    assert (await bob.sock.call("recorder:ice-candidate", end))["ok"]
    assert (await recorder.next("recorder:ice-candidate"))["candidate"] is None
    for sock in (alice_tab2, carol.sock):
        ack = await sock.call("recorder:offer", {"call_id": call_id, "offer": OFFER})
        assert ack["error"]["code"] == "forbidden"
        ack = await sock.call("recorder:ice-candidate", ice)
        assert ack["error"]["code"] == "forbidden"
    # Recorder -> the participant's bound socket only.
    answer = {**ref, "user_id": alice.id, "answer": ANSWER}
    assert (await recorder.call("recorder:answer", answer))["ok"]
    assert await alice.sock.next("recorder:answer") == {"call_id": call_id, "answer": ANSWER}
    to_bob = {**ref, "user_id": bob.id, "candidate": CANDIDATE}
    assert (await recorder.call("recorder:ice-candidate", to_bob))["ok"]
    assert await bob.sock.next("recorder:ice-candidate") == {
        "call_id": call_id,
        "candidate": CANDIDATE,
    }
    wrong = [
        ({**answer, "user_id": carol.id}, "not_found"),
        ({**answer, "recording_id": "nope"}, "not_found"),
        ({**answer, "call_id": "nope"}, "not_found"),
        ({**answer, "answer": OFFER}, "invalid_request"),
        ({**answer, "extra": 1}, "invalid_request"),
    ]
    for payload, code in wrong:
        ack = await recorder.call("recorder:answer", payload)
        assert ack["ok"] is False and ack["error"]["code"] == code, (payload, ack)
    # Nothing reached the second tab or carol.
    await alice.sock.call("presence:list", {})
    assert [e for e, _ in alice_tab2.drain() if e.startswith("recorder:")] == []
    assert [e for e, _ in carol.sock.drain() if e.startswith("recorder:")] == []


async def test_malformed_and_oversized_signals(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    await recording(recorder, alice, bob, call_id)
    huge = {"type": "offer", "sdp": OFFER["sdp"] + "a=x\r\n" * 25_000}
    bad = [
        ("recorder:offer", {"call_id": call_id, "offer": huge}),
        ("recorder:offer", {"call_id": call_id, "offer": {"type": "offer", "sdp": "hello"}}),
        ("recorder:offer", {"call_id": call_id, "offer": ANSWER}),
        ("recorder:offer", {"offer": OFFER}),
        ("recorder:offer", {"call_id": call_id, "offer": OFFER, "to": 2}),
        ("recorder:ice-candidate", {"call_id": call_id, "candidate": {"candidate": "x" * 2000}}),
        ("recorder:ice-candidate", {"call_id": call_id, "candidate": {"candidate": "nope"}}),
        ("recorder:ice-candidate", {"call_id": call_id}),
        ("recorder:offer", "text"),
    ]
    for event, payload in bad:
        ack = await alice.sock.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", (event, ack)
    ref = {"call_id": call_id, "recording_id": "r"}
    for event, payload in [
        ("recorder:state", {**ref, "state": "paused"}),
        ("recorder:failed", {**ref, "reason": "Not A Reason!"}),
        ("recorder:failed", {**ref, "reason": "x" * 100}),
        ("recorder:done", {**ref, "key": "k", "size": -1}),
        ("recorder:answer", {**ref, "user_id": alice.id, "answer": huge | {"type": "answer"}}),
        ("recorder:done", None),
    ]:
        ack = await recorder.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", (event, ack)
    assert recorder.client.sio.connected and alice.sock.sio.connected


# -- stopping by the call's end and by failures ---------------------------------------------


async def test_call_end_stops_the_recording(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    assert (await alice.sock.call("call:end", {"call_id": call_id}))["ok"]
    assert await recorder.next("recorder:stop") == {
        "call_id": call_id,
        "recording_id": recording_id,
        "reason": "call_ended",
    }
    expected = {
        "call_id": call_id,
        "recording_id": recording_id,
        "state": "stopped",
        "by": None,
        "reason": "call_ended",
    }
    assert await bob.sock.next("call:recording") == expected
    assert await alice.sock.next("call:recording") == expected
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["error"]["code"] == "forbidden"  # the call is gone


async def test_participant_leaving_stops_the_recording(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    await bob.sock.close()
    assert await recorder.next("recorder:stop") == {
        "call_id": call_id,
        "recording_id": recording_id,
        "reason": "participant_left",
    }
    assert await alice.sock.next("call:recording") == {
        "call_id": call_id,
        "recording_id": recording_id,
        "state": "stopped",
        "by": None,
        "reason": "participant_left",
    }


async def test_recorder_lost_fails_the_recording(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    await recorder.client.close()
    failed = {
        "call_id": call_id,
        "recording_id": recording_id,
        "state": "failed",
        "by": None,
        "reason": "recorder_lost",
    }
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    assert (await alice.get("/api/recordings")).json()["recordings"] == []
    ack = await alice.sock.call("recorder:offer", {"call_id": call_id, "offer": OFFER})
    assert ack["error"]["code"] == "forbidden"  # no recording any more
    ack = await alice.sock.call("call:record", {"call_id": call_id, "action": "start"})
    assert ack["error"]["code"] == "unavailable"
    # The call itself goes on.
    assert (await alice.sock.call("webrtc:offer", {"call_id": call_id, "offer": OFFER}))["ok"]
    assert (await bob.sock.next("webrtc:offer"))["offer"] == OFFER


async def test_recorder_failure_is_reported(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    report = {"call_id": call_id, "recording_id": recording_id, "reason": "disk_full"}
    assert (await recorder.call("recorder:failed", report))["ok"]
    failed = {**report, "state": "failed", "by": None}
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    assert (await recorder.call("recorder:failed", report))["ok"]  # replayed: nothing new
    assert (await done(rec, recorder, call_id, recording_id))["error"]["code"] == "conflict"
    unknown = {**report, "recording_id": "nope"}
    assert (await recorder.call("recorder:failed", unknown))["error"]["code"] == "not_found"
    assert (await alice.get(f"/api/recordings/{recording_id}")).status_code == 409


# -- the finished file ------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_done_download_and_delete(rec: World) -> None:
    recorder = await rec.recorder()
    alice = await person(rec.server, "alice")
    bob = await person(rec.server, "bob")
    carol = await person(rec.server, "carol")
    bob_tab2 = await bob.tab()
    call_id, recording_id = await stopped(rec, recorder, alice, bob)
    assert (await done(rec, recorder, call_id, recording_id))["ok"]
    ready = {"recording_id": recording_id, "call_id": call_id}
    assert await alice.sock.next("recording:ready") == ready
    assert await bob.sock.next("recording:ready") == ready
    assert await bob_tab2.next("recording:ready") == ready  # every socket of each participant
    assert (await done(rec, recorder, call_id, recording_id))["ok"]  # replayed: fine
    # Listed for both participants, nobody else.
    for someone in (alice, bob):
        listed = (await someone.get("/api/recordings")).json()["recordings"]
        assert listed == [
            {
                "id": recording_id,
                "call_id": call_id,
                "status": "ready",
                "started_by": by(alice),
                "participants": [by(alice), by(bob)],
                "started_at": 1000.0,
                "ended_at": 1005.2,
                "duration": 5.2,
                "size": len(WEBM),
                "content_type": "video/webm",
            }
        ]
    assert (await carol.get("/api/recordings")).json() == {"recordings": []}
    assert (await rec.server.http.get("/api/recordings")).status_code == 401
    # Download: a redirect to a short pre-signed GET that serves the bytes.
    got = await bob.get(f"/api/recordings/{recording_id}")
    assert got.status_code == 302
    location = got.headers["Location"]
    assert location.startswith(rec.server.url) and "X-Amz-Signature=" in location
    file = await rec.server.http.get(location)
    assert file.status_code == 200
    assert file.content == WEBM
    assert file.headers["content-type"] == "video/webm"
    as_json = await alice.get(
        f"/api/recordings/{recording_id}", headers={"Accept": "application/json"}
    )
    assert as_json.status_code == 200
    assert as_json.json()["url"].startswith(rec.server.url)
    assert as_json.json()["expires_in"] == rec.server.settings.config.storage.download_url_ttl
    # Others learn nothing.
    for path in (
        f"/api/recordings/{recording_id}",
        "/api/recordings/nope",
        "/api/recordings/x" * 9,
    ):
        response = await carol.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    response = await rec.server.http.delete(
        f"/api/recordings/{recording_id}", headers={"Authorization": f"Bearer {carol.token}"}
    )
    assert response.status_code == 404
    assert await rec.exists(f"recordings/{recording_id}.webm")
    # A participant deletes it: gone for both, and from the store.
    response = await rec.server.http.delete(
        f"/api/recordings/{recording_id}", headers={"Authorization": f"Bearer {bob.token}"}
    )
    assert response.status_code == 204
    assert not await rec.exists(f"recordings/{recording_id}.webm")
    assert (await alice.get("/api/recordings")).json() == {"recordings": []}
    assert (await alice.get(f"/api/recordings/{recording_id}")).status_code == 404


async def test_done_without_the_object_fails(rec: World) -> None:
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    recording_id, _ = await recording(recorder, alice, bob, call_id)
    assert (await alice.sock.call("call:record", {"call_id": call_id, "action": "stop"}))["ok"]
    await recorder.next("recorder:stop")
    for someone in (alice, bob):
        assert (await someone.sock.next("call:recording"))["state"] == "stopped"
    ref = {"call_id": call_id, "recording_id": recording_id}
    wrong_key = await recorder.call(
        "recorder:done",
        {
            **ref,
            "key": "recordings/other.webm",
            "size": 10,
            "duration": 1,
            "content_type": "video/webm",
            "started_at": 1,
            "ended_at": 2,
        },
    )
    assert wrong_key["error"]["code"] == "invalid_request"
    ack = await done(rec, recorder, call_id, recording_id)  # nothing uploaded
    assert ack["ok"] is False and ack["error"]["code"] == "upload_missing"
    failed = {**ref, "state": "failed", "by": None, "reason": "upload_missing"}
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    assert (await alice.get("/api/recordings")).json() == {"recordings": []}
    assert (await done(rec, recorder, call_id, recording_id))["error"]["code"] == "conflict"


async def test_done_with_another_size_fails_and_removes_the_object(rec: World) -> None:
    recorder = await rec.recorder()
    alice = await person(rec.server, "alice")
    bob = await person(rec.server, "bob")
    call_id, recording_id = await stopped(rec, recorder, alice, bob)
    await rec.upload(f"recordings/{recording_id}.webm", WEBM[:-1])
    ack = await done(rec, recorder, call_id, recording_id)
    assert ack["error"]["code"] == "upload_mismatch"
    assert not await rec.exists(f"recordings/{recording_id}.webm")
    assert (await alice.get(f"/api/recordings/{recording_id}")).status_code == 409


async def test_retention_cleanup(rec: World) -> None:
    recorder = await rec.recorder()
    alice = await person(rec.server, "alice")
    bob = await person(rec.server, "bob")
    call_id, recording_id = await stopped(rec, recorder, alice, bob)
    assert (await done(rec, recorder, call_id, recording_id))["ok"]
    recordings = rec.server.app.container.recordings
    now = rec.server.app.container.clock()
    assert await recordings.cleanup(now) == 0
    assert await recordings.cleanup(now + 29 * DAY) == 0
    assert await rec.exists(f"recordings/{recording_id}.webm")
    assert await recordings.cleanup(now + 31 * DAY) == 1
    assert not await rec.exists(f"recordings/{recording_id}.webm")
    assert (await alice.get("/api/recordings")).json() == {"recordings": []}


@pytest.mark.timeout(90)
async def test_processing_left_by_a_restart_fails(tmp_path: Path) -> None:
    overrides = enabled()
    settings = make_settings(tmp_path / "d", overrides)
    async with running_store(settings):
        async with running_server(tmp_path / "d", overrides) as server:
            w = World(server)
            recorder = await w.recorder()
            alice = await person(server, "alice")
            bob = await person(server, "bob")
            call_id, recording_id = await stopped(w, recorder, alice, bob)
            listed = (await alice.get("/api/recordings")).json()["recordings"]
            assert [r["status"] for r in listed] == ["processing"]
        async with running_server(tmp_path / "d", overrides) as server:
            repo = server.app.container.recordings
            token = await server.token("alice")
            response = await server.http.get(
                "/api/recordings", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.json() == {"recordings": []}
            assert await repo.cleanup(server.app.container.clock() + 31 * DAY) == 1
            assert not await w.exists(f"recordings/{recording_id}.webm")
            assert call_id


@pytest.mark.timeout(90)
async def test_store_down_at_done_delete_and_cleanup(rec: World) -> None:
    """The store down: `done` fails the recording (`store_unavailable`), delete and retention
    keep the row (nothing is forgotten while its file may still be there)."""
    recorder = await rec.recorder()
    alice, bob, call_id = await in_call(rec)
    kept_id, _ = await recording(recorder, alice, bob, call_id)
    assert (await alice.sock.call("call:record", {"call_id": call_id, "action": "stop"}))["ok"]
    await recorder.next("recorder:stop")
    await rec.upload(f"recordings/{kept_id}.webm")
    assert (await done(rec, recorder, call_id, kept_id))["ok"]
    for someone in (alice, bob):
        assert (await someone.sock.next("call:recording"))["state"] == "stopped"
        assert (await someone.sock.next("recording:ready"))["recording_id"] == kept_id
    late_id, _ = await recording(recorder, alice, bob, call_id)
    assert (await bob.sock.call("call:record", {"call_id": call_id, "action": "stop"}))["ok"]
    await recorder.next("recorder:stop")
    await rec.upload(f"recordings/{late_id}.webm")
    for someone in (alice, bob):
        assert (await someone.sock.next("call:recording"))["state"] == "stopped"
    assert rec.store is not None
    rec.store.terminate()
    rec.store.wait(timeout=10)
    ack = await done(rec, recorder, call_id, late_id)
    assert ack["ok"] is False and ack["error"]["code"] == "storage_unavailable", ack
    failed = {
        "call_id": call_id,
        "recording_id": late_id,
        "state": "failed",
        "by": None,
        "reason": "store_unavailable",
    }
    assert await alice.sock.next("call:recording") == failed
    assert await bob.sock.next("call:recording") == failed
    response = await rec.server.http.delete(
        f"/api/recordings/{kept_id}", headers={"Authorization": f"Bearer {alice.token}"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"
    recordings = rec.server.app.container.recordings
    assert await recordings.cleanup(rec.server.app.container.clock() + 31 * DAY) == 0
    listed = (await bob.get("/api/recordings")).json()["recordings"]
    assert [(r["id"], r["status"]) for r in listed] == [(kept_id, "ready")]
    assert recorder.client.sio.connected
