"""Call recording end to end: two aiortc clients in a real call through the appliance, each also
sending a frame-counter video and its own tone to the real recorder service (a subprocess), the
real store; the mixed file is downloaded and checked with PyAV. Then the failures: store down at
upload, recorder killed mid-call, recorder stopped."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.recorder_peer import CounterTrack, RecorderLeg, ToneTrack, read_counter
from tests.recorder_support import RunningRecorder, running_recorder, wait_recorder
from tests.store_support import running_store, storage_overrides
from tests.support import EventClient, RunningServer, make_settings, running_server
from tests.test_calls import active_call
from tests.test_chat import Person, person
from tests.webrtc_peer import Peer, loopback_only

TONES = {"alice": 440.0, "bob": 1000.0}
MARKERS = {"alice": 1, "bob": 2}
RECORD_SECONDS = 5.0


def overrides(**recording: Any) -> dict[str, dict[str, Any]]:
    return {
        "web": {"presence_grace": 0},
        "recording": {"enabled": True, "host_addresses": ["127.0.0.1"], **recording},
        "storage": storage_overrides(),
    }


@dataclass
class Side:
    """A participant: their socket, the call's peer connection and the leg to the recorder;
    one task routes their socket's events to the right one, the rest to `events`."""

    who: Person
    peer: Peer
    legs: list[RecorderLeg] = field(default_factory=list)
    events: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)

    @property
    def sock(self) -> EventClient:
        return self.who.sock

    async def route(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            name, data = await self.sock.events.get()
            if name == "webrtc:offer":
                await self.peer.take_offer(data["offer"])
            elif name == "webrtc:answer":
                await self.peer.take_answer(data["answer"])
            elif name == "webrtc:ice-candidate":
                await self.peer.take_candidate(data["candidate"])
            elif name.startswith("recorder:") and self.legs:
                await self.legs[-1].take(name, data)
            else:
                await self.events.put((name, data))

    async def next(self, event: str, timeout: float = 10.0, **match: Any) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.events.get()
                if name == event and all(data.get(k) == v for k, v in match.items()):
                    return data

    async def open_leg(self, call_id: str) -> RecorderLeg:
        name = self.who.name
        leg = RecorderLeg(self.sock, call_id, [CounterTrack(MARKERS[name]), ToneTrack(TONES[name])])
        self.legs.append(leg)
        await leg.offer()
        return leg


@dataclass
class World:
    server: RunningServer
    store: Any
    recorder: RunningRecorder
    alice: Side
    bob: Side
    carol: Person
    call_id: str
    stack: AsyncExitStack


@asynccontextmanager
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **recording: Any
) -> AsyncIterator[World]:
    """Store, web, recorder; alice calls bob, both peers connected and exchanging media."""
    loopback_only(monkeypatch)
    data_dir = tmp_path / "data"
    config = overrides(**recording)
    settings = make_settings(data_dir, config)
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(running_store(settings))
        server = await stack.enter_async_context(running_server(data_dir, config))
        recorder = await stack.enter_async_context(running_recorder(server.settings, server.url))
        alice, bob = await person(server, "alice"), await person(server, "bob")
        carol = await person(server, "carol")
        call_id = await active_call(alice, bob)
        sides = [Side(alice, Peer(alice.sock, None, relay=False))]
        sides.append(Side(bob, Peer(bob.sock, None, relay=False)))
        stop = asyncio.Event()
        routes = [asyncio.create_task(s.route(stop)) for s in sides]
        try:
            await sides[0].peer.offer()
            async with asyncio.timeout(30):
                for side in sides:
                    await side.peer.connected.wait()
                    await side.peer.got_frames.wait()
            yield World(server, store, recorder, sides[0], sides[1], carol, call_id, stack)
        finally:
            stop.set()
            for task in routes:
                task.cancel()
            await asyncio.gather(*routes, return_exceptions=True)
            for side in sides:
                for leg in side.legs:
                    await leg.close()
                await side.peer.close()


async def start_recording(w: World) -> tuple[str, float]:
    """alice starts; both are told; both open their leg to the recorder; both hear `recording`.
    Returns the id and when media began to flow (the first leg connected)."""
    ack = await w.alice.sock.call("call:record", {"call_id": w.call_id, "action": "start"})
    assert ack["ok"] and ack["state"] == "starting", ack
    recording_id = str(ack["recording_id"])
    for side in (w.alice, w.bob):
        starting = await side.next("call:recording", state="starting")
        assert starting["by"] == {"user_id": w.alice.who.id, "username": "alice"}
    await asyncio.gather(w.alice.open_leg(w.call_id), w.bob.open_leg(w.call_id))
    for side in (w.alice, w.bob):
        live = await side.next("call:recording", timeout=30)
        assert live["state"] == "recording", (live, w.recorder.output())
        assert live["recording_id"] == recording_id
    return recording_id, min(side.legs[-1].connected_at for side in (w.alice, w.bob))


async def stop_recording(w: World, recording_id: str) -> float:
    """bob stops; returns when web had passed the stop to the recorder (its ack)."""
    ack = await w.bob.sock.call("call:record", {"call_id": w.call_id, "action": "stop"})
    stopped_at = time.monotonic()
    assert ack["ok"], ack
    for side in (w.alice, w.bob):
        stopped = await side.next("call:recording", state="stopped")
        assert stopped["recording_id"] == recording_id
        assert stopped["by"] == {"user_id": w.bob.who.id, "username": "bob"}
    return stopped_at


async def workdir_empty(recorder: RunningRecorder, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not recorder.workdir.is_dir() or any(recorder.workdir.iterdir()):
            await asyncio.sleep(0.05)
    assert recorder.workdir.stat().st_mode & 0o777 == 0o700


async def download(someone: Person, recording_id: str) -> bytes:
    response = await someone.get(f"/api/recordings/{recording_id}")
    assert response.status_code == 302, response.text
    file = await someone.server.http.get(response.headers["Location"])
    assert file.status_code == 200
    assert file.headers["content-type"] == "video/webm"
    return bytes(file.content)


def tone_share(pcm: np.ndarray, frequency: float) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    band = (freqs > frequency - 20) & (freqs < frequency + 20)
    return float(spectrum[band].sum() / spectrum.sum())


def check_recording(data: bytes, expected_seconds: float, slack: float) -> None:
    with av.open(io.BytesIO(data), "r") as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        video = container.streams.video[0]
        assert video.codec_context.name == "vp8"
        assert container.streams.audio[0].codec_context.name == "opus"
        assert (video.width, video.height) == (1280, 480)
        assert container.duration is not None
        duration = container.duration / 1e6
        assert abs(duration - expected_seconds) < slack, (duration, expected_seconds)
        counters: dict[int, list[int]] = {1: [], 2: []}
        for frame in container.decode(video):
            luma = frame.to_ndarray(format="gray")
            for tile in (0, 1):
                part = luma[:, tile * 640 : (tile + 1) * 640]
                if part.max() < 100:
                    continue  # this participant's picture has not come yet
                count, marker = read_counter(part)
                assert marker == tile + 1, (tile, marker)
                counters[marker].append(count)
    for marker, counts in counters.items():
        distinct = sorted(set(counts))
        assert len(distinct) > 30 * expected_seconds * 0.5, (marker, len(distinct))
        assert counts == sorted(counts), marker  # the counters only go up
    with av.open(io.BytesIO(data), "r") as container:
        pcm = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)])
    assert tone_share(pcm, TONES["alice"]) > 0.1
    assert tone_share(pcm, TONES["bob"]) > 0.1


@pytest.mark.timeout(150)
@pytest.mark.parametrize("passthrough", [True, False], ids=["passthrough", "stock"])
async def test_record_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passthrough: bool
) -> None:
    # aiortc's MediaRecorder decodes and encodes in the recorder's event loop: on a starved box
    # it loses the first frames (the file starts later); the pass-through does not.
    slack = 0.5 if passthrough else 1.5
    async with world(tmp_path, monkeypatch, passthrough=passthrough) as w:
        recording_id, began = await start_recording(w)
        await asyncio.sleep(RECORD_SECONDS)
        recorded = await stop_recording(w, recording_id) - began
        for side in (w.alice, w.bob):
            ready = await side.next("recording:ready", timeout=90)
            assert ready == {"recording_id": recording_id, "call_id": w.call_id}
        await workdir_empty(w.recorder)
        listed = (await w.alice.who.get("/api/recordings")).json()["recordings"]
        assert [r["id"] for r in listed] == [recording_id]
        assert listed[0]["content_type"] == "video/webm"
        assert abs(listed[0]["duration"] - recorded) < slack, (listed, w.recorder.output())
        data = await download(w.alice.who, recording_id)
        assert data == await download(w.bob.who, recording_id)
        assert len(data) == listed[0]["size"]
        try:
            check_recording(data, recorded, slack)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe recorder's log:\n{w.recorder.output()}") from exc
        response = await w.carol.get(f"/api/recordings/{recording_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        # The call itself went on all along.
        for side in (w.alice, w.bob):
            assert side.peer.pc.connectionState == "connected"


@pytest.mark.timeout(120)
async def test_store_down_at_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with world(tmp_path, monkeypatch) as w:
        recording_id, _ = await start_recording(w)
        await asyncio.sleep(1.0)
        w.store.terminate()
        await asyncio.to_thread(w.store.wait, 10)
        await stop_recording(w, recording_id)
        for side in (w.alice, w.bob):
            failed = await side.next("call:recording", timeout=60, state="failed")
            assert failed == {
                "call_id": w.call_id,
                "recording_id": recording_id,
                "state": "failed",
                "by": None,
                "reason": "store_unavailable",
            }
        await workdir_empty(w.recorder)
        assert (await w.alice.who.get("/api/recordings")).json() == {"recordings": []}
        response = await w.alice.who.get(f"/api/recordings/{recording_id}")
        assert response.status_code in (404, 409)


@pytest.mark.timeout(120)
async def test_recorder_killed_mid_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with world(tmp_path, monkeypatch) as w:
        recording_id, _ = await start_recording(w)
        await asyncio.sleep(1.0)
        assert w.recorder.workdir.is_dir() and any(w.recorder.workdir.iterdir())
        w.recorder.proc.kill()
        await asyncio.to_thread(w.recorder.proc.wait, 10)
        for side in (w.alice, w.bob):
            failed = await side.next("call:recording", timeout=30, state="failed")
            assert failed["recording_id"] == recording_id
            assert failed["reason"] == "recorder_lost" and failed["by"] is None
        # The call goes on: media still flows between the peers, chat works.
        before = dict(w.bob.peer.frames)
        async with asyncio.timeout(10):
            while w.bob.peer.frames["video"] <= before["video"] + 10:
                await asyncio.sleep(0.05)
        for side in (w.alice, w.bob):
            assert side.peer.pc.connectionState == "connected"
        room = await w.alice.who.direct(w.bob.who)
        assert (await w.alice.who.send(room, "still here", "c1"))["ok"]
        message = await w.bob.next("chat:message")
        assert message["text"] == "still here"
        # Left-overs of the killed recorder are on disk until it is back, then gone.
        assert any(w.recorder.workdir.iterdir())
        await wait_recorder(w.server.url, "down")
        async with running_recorder(w.server.settings, w.server.url) as again:
            await workdir_empty(again, timeout=5)
            # And recording works again in the same call.
            ack = await w.alice.sock.call("call:record", {"call_id": w.call_id, "action": "start"})
            assert ack["ok"] and ack["recording_id"] != recording_id, ack


@pytest.mark.timeout(90)
async def test_recorder_stopped_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world(tmp_path, monkeypatch) as w:
        w.recorder.proc.terminate()
        await asyncio.to_thread(w.recorder.proc.wait, 10)
        assert w.recorder.proc.returncode == 0, w.recorder.output()
        await wait_recorder(w.server.url, "down")
        ack = await w.alice.sock.call("call:record", {"call_id": w.call_id, "action": "start"})
        assert ack["ok"] is False and ack["error"]["code"] == "unavailable", ack
        await workdir_empty(w.recorder, timeout=1)
