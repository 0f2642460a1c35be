"""The recorder's sessions without a web server: what it answers to bad, unknown and excess
requests, the start timeout, the failure reasons, and its 0700 work folder."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from appliance.adapters.object_store import StoreUnavailable
from appliance.recorder import service as service_module
from appliance.recorder.mix import MixError, MixResult
from appliance.recorder.service import Recorder, failure_reason
from appliance.recorder.sinks import TrackFile
from appliance.recorder.workdir import WorkDir
from tests.store_support import storage_overrides
from tests.support import make_settings


class Web:
    """Stands in for web's socket: records what the recorder emits."""

    def __init__(self) -> None:
        self.emitted: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.done_ack: dict[str, Any] = {"ok": True}

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        await self.emitted.put((event, payload))

    async def call(self, event: str, payload: dict[str, Any], within: float) -> Any:
        await self.emitted.put((event, payload))
        return self.done_ack

    async def next(self, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(timeout):
            return await self.emitted.get()


def make_recorder(tmp_path: Path, **recording: Any) -> tuple[Recorder, Web]:
    settings = make_settings(
        tmp_path / "data",
        {"recording": {"enabled": True, **recording}, "storage": storage_overrides()},
    )
    web = Web()
    recorder = Recorder(settings, web.emit, web.call)
    recorder.prepare()
    return recorder, web


def start(recording_id: str = "rec1", call_id: str = "call1") -> dict[str, Any]:
    return {
        "call_id": call_id,
        "recording_id": recording_id,
        "participants": [{"user_id": 1, "username": "a"}, {"user_id": 2, "username": "b"}],
        "media": {"audio": True, "video": True},
    }


def test_workdir_is_private_and_wiped(tmp_path: Path) -> None:
    work = WorkDir(tmp_path)
    (tmp_path / "recorder" / "old" / "deep").mkdir(parents=True)
    (tmp_path / "recorder" / "old" / "deep" / "a.mkv").write_bytes(b"x")
    (tmp_path / "recorder" / "stray").write_bytes(b"y")
    (tmp_path / "recorder").chmod(0o755)
    assert work.prepare() == 2
    assert work.entries() == []
    assert (tmp_path / "recorder").stat().st_mode & 0o777 == 0o700
    folder = work.create("abc_DEF-1")
    assert folder.stat().st_mode & 0o777 == 0o700
    for bad in ("..", "a/b", "", "x" * 65, "a b", "../recorder"):
        with pytest.raises(ValueError):
            work.create(bad)
    work.remove("abc_DEF-1")
    assert work.entries() == []


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (StoreUnavailable("down"), "store_unavailable"),
        (MixError("disk_full", "x"), "disk_full"),
        (RuntimeError("boom"), "recorder_error"),
        (OSError(errno.EIO, "io"), "recorder_error"),
    ],
)
def test_failure_reasons(exc: BaseException, reason: str) -> None:
    assert failure_reason(exc) == reason


async def test_bad_and_unknown_requests(tmp_path: Path) -> None:
    recorder, web = make_recorder(tmp_path)
    for data in (
        None,
        "x",
        {},
        {**start(), "recording_id": "../x"},
        {**start(), "participants": []},
    ):
        ack = await recorder.start(data)
        assert ack == {
            "ok": False,
            "error": {"code": "invalid_request", "message": "malformed recorder:start"},
        }
    assert recorder.workdir.entries() == []
    assert await recorder.start(start()) == {"ok": True}
    assert await recorder.start(start()) == {"ok": True}  # a replay: the same recording
    assert recorder.workdir.entries() == ["rec1"]
    offer = {"type": "offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}
    # Unknown recording, wrong call, not a participant: not_found; malformed: invalid_request.
    for data in (
        {"call_id": "call1", "recording_id": "nope", "user_id": 1, "offer": offer},
        {"call_id": "other", "recording_id": "rec1", "user_id": 1, "offer": offer},
        {"call_id": "call1", "recording_id": "rec1", "user_id": 3, "offer": offer},
    ):
        assert (await recorder.offer(data))["error"]["code"] == "not_found"
        assert (await recorder.candidate({**data, "candidate": None}))["error"][
            "code"
        ] == "not_found"
    bad = {"call_id": "call1", "recording_id": "rec1", "user_id": "1", "offer": {}}
    assert (await recorder.offer(bad))["error"]["code"] == "invalid_request"
    assert (await recorder.candidate([1]))["error"]["code"] == "invalid_request"
    garbage = {"type": "offer", "sdp": "v=0 this is no SDP at all"}
    ack = await recorder.offer(
        {"call_id": "call1", "recording_id": "rec1", "user_id": 1, "offer": garbage}
    )
    assert ack["error"]["code"] == "invalid_request"
    # Candidates may overtake their offer: kept (a bounded number) for the peer to come.
    early = {"call_id": "call1", "recording_id": "rec1", "user_id": 2, "candidate": None}
    for _ in range(64):
        assert await recorder.candidate(early) == {"ok": True}
    assert (await recorder.candidate(early))["error"]["code"] == "invalid_request"
    assert recorder.sessions["rec1"].peers == {}
    assert await recorder.stop({"call_id": "call1", "recording_id": "nope"}) == {"ok": True}
    assert (await recorder.stop("x"))["error"]["code"] == "invalid_request"
    await recorder.abort_all()
    assert recorder.workdir.entries() == [] and recorder.sessions == {}
    assert web.emitted.empty()


async def test_max_concurrent(tmp_path: Path) -> None:
    recorder, _ = make_recorder(tmp_path, max_concurrent=2)
    assert (await recorder.start(start("r1", "c1")))["ok"]
    assert (await recorder.start(start("r2", "c2")))["ok"]
    ack = await recorder.start(start("r3", "c3"))
    assert ack["ok"] is False and ack["error"]["code"] == "unavailable"
    await recorder.abort_all()


async def test_no_media_within_the_start_timeout(tmp_path: Path) -> None:
    recorder, web = make_recorder(tmp_path, start_timeout=0.3)
    assert (await recorder.start(start()))["ok"]
    event, payload = await web.next()
    assert (event, payload) == (
        "recorder:failed",
        {"call_id": "call1", "recording_id": "rec1", "reason": "timeout"},
    )
    assert recorder.workdir.entries() == [] and recorder.sessions == {}


class FakePeer:
    """A participant whose tracks are already in files."""

    def __init__(self, user_id: int, files: list[TrackFile]) -> None:
        self.user_id = user_id
        self.files = files
        self.sinks: list[Any] = []

    async def halt(self) -> None:
        pass

    async def close(self) -> list[TrackFile]:
        return self.files

    async def abort(self) -> None:
        pass


async def stopped_with_media(recorder: Recorder) -> None:
    assert (await recorder.start(start()))["ok"]
    session = recorder.sessions["rec1"]
    track = session.folder / "1-0-video.mkv"
    track.write_bytes(b"frames")
    session.peers[1] = FakePeer(1, [TrackFile(track, "video", 0.2, 30)])  # type: ignore[assignment]
    assert (await recorder.stop({"call_id": "call1", "recording_id": "rec1"}))["ok"]


async def test_disk_full_while_mixing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def full(inputs: list[list[TrackFile]], output: Path) -> MixResult:
        output.write_bytes(b"half")
        raise MixError("disk_full", "No space left on device")

    monkeypatch.setattr(service_module, "mix_in_child", full)
    recorder, web = make_recorder(tmp_path)
    await stopped_with_media(recorder)
    event, payload = await web.next()
    assert event == "recorder:failed" and payload["reason"] == "disk_full"
    assert recorder.workdir.entries() == [] and recorder.sessions == {}


async def test_store_down_at_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def mixed(inputs: list[list[TrackFile]], output: Path) -> MixResult:
        output.write_bytes(b"webm")
        return MixResult(5.0, 4, "video/webm")

    monkeypatch.setattr(service_module, "mix_in_child", mixed)
    recorder, web = make_recorder(tmp_path)  # nothing listens on the store's port
    await stopped_with_media(recorder)
    event, payload = await web.next()
    assert event == "recorder:failed" and payload["reason"] == "store_unavailable"
    assert recorder.workdir.entries() == [] and recorder.sessions == {}


async def test_nothing_recorded(tmp_path: Path) -> None:
    recorder, web = make_recorder(tmp_path)
    assert (await recorder.start(start()))["ok"]
    assert (await recorder.stop({"call_id": "call1", "recording_id": "rec1"}))["ok"]
    event, payload = await web.next()
    assert event == "recorder:failed" and payload["reason"] == "no_media"
    assert recorder.workdir.entries() == []


async def test_no_room_on_disk_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, _ = make_recorder(tmp_path)
    monkeypatch.setattr(service_module, "MIN_FREE_BYTES", 2**62)
    ack = await recorder.start(start())
    assert ack["ok"] is False and ack["error"]["code"] == "unavailable"
    assert recorder.workdir.entries() == [] and recorder.sessions == {}


# -- the socket: a stand-in web that goes away and comes back ----------------------------------


class StandInWeb:
    """A Socket.IO server on a fixed loopback port that the recorder connects to."""

    def __init__(self, port: int) -> None:
        import socketio

        self.port = port
        self.sio = socketio.AsyncServer(async_mode="asgi")
        self.connected: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.gone = asyncio.Event()

        async def connect(sid: str, environ: Any, auth: Any) -> None:
            await self.connected.put((sid, auth))

        async def disconnect(sid: str, reason: Any = None) -> None:
            self.gone.set()

        self.sio.on("connect", connect)
        self.sio.on("disconnect", disconnect)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StandInWeb]:
        import socket

        import socketio
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.setblocking(False)
        config = uvicorn.Config(
            socketio.ASGIApp(self.sio), log_level="warning", ws="websockets-sansio", lifespan="off"
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield self
        finally:
            for sid in list(self.sio.manager.get_participants("/", None)):
                await self.sio.disconnect(sid[0])
            server.should_exit = True
            await task
            sock.close()


@pytest.mark.timeout(60)
async def test_reconnects_and_drops_recordings_when_web_goes(tmp_path: Path) -> None:
    from appliance.adapters.service_key import ensure_service_key
    from appliance.recorder.service import RecorderService
    from tests.test_cli import free_port

    settings = make_settings(
        tmp_path / "data", {"recording": {"enabled": True}, "storage": storage_overrides()}
    )
    port = free_port()
    service = RecorderService(settings, f"http://127.0.0.1:{port}")
    stop = asyncio.Event()
    running = asyncio.create_task(service.run(stop))
    key = ensure_service_key(settings.data_dir)
    try:
        await asyncio.sleep(0.3)  # web is not there yet: the recorder keeps trying
        web = StandInWeb(port)
        async with web.running():
            async with asyncio.timeout(20):
                sid, auth = await web.connected.get()
            assert auth == {"service": "recorder", "key": key}
            ack = await web.sio.call("recorder:start", start(), to=sid, timeout=5)
            assert ack == {"ok": True}
            assert service.recorder.workdir.entries() == ["rec1"]
        # web went away: the recording and its files are dropped at once.
        async with asyncio.timeout(10):
            while service.recorder.sessions or service.recorder.workdir.entries():
                await asyncio.sleep(0.05)
        again = StandInWeb(port)
        async with again.running():
            async with asyncio.timeout(20):
                _, auth = await again.connected.get()
            assert auth == {"service": "recorder", "key": key}
            # Nothing is resumed.
            assert service.recorder.sessions == {}
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await running


@pytest.mark.timeout(60)
def test_the_idle_recorder_holds_no_media_library() -> None:
    """aiortc, PyAV, numpy, minio and pystun3 wait for the first recording (docs/recording.md,
    "Memory"): what `appliance recorder` imports before it connects holds none of them."""
    import subprocess
    import sys

    heavy = ("aiortc", "aioice", "av", "numpy", "minio", "stun")
    script = (
        "import sys, appliance.cli, appliance.bootstrap, appliance.recorder.service\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


async def test_the_first_start_loads_the_media_libraries_once(tmp_path: Path) -> None:
    recorder, _web = make_recorder(tmp_path)
    assert recorder.media_load_seconds is None
    assert await recorder.start(start("rec1", "call1")) == {"ok": True}
    loaded = recorder.media_load_seconds
    assert loaded is not None
    assert await recorder.start(start("rec2", "call2")) == {"ok": True}
    assert recorder.media_load_seconds == loaded  # not again


async def test_a_failed_load_refuses_the_start_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder, _web = make_recorder(tmp_path)
    real = recorder._import_media
    calls: list[int] = []

    def broken_once() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ImportError("libvpx.so.7: cannot open shared object file")
        real()

    monkeypatch.setattr(recorder, "_import_media", broken_once)
    ack = await recorder.start(start())
    assert ack == {
        "ok": False,
        "error": {"code": "unavailable", "message": "the recorder cannot load its media libraries"},
    }
    assert recorder.workdir.entries() == []
    assert await recorder.start(start()) == {"ok": True}
    assert len(calls) == 2
