"""The recorder service: a Socket.IO client of `web` with the service key, one `Session` per call
being recorded (docs/recording.md, docs/protocol.md "Recorder <-> web").

web -> recorder: recorder:start (ack), recorder:offer, recorder:ice-candidate, recorder:stop.
recorder -> web: recorder:answer, recorder:state, recorder:failed, recorder:done (ack).
When web goes away every session is dropped with its files: web fails them (`recorder_lost`) and
nothing is resumed when the connection comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import socketio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.adapters.object_store import MinioObjectStore, StoreUnavailable
from appliance.adapters.service_key import ensure_service_key
from appliance.config import Settings
from appliance.recorder.mixjob import MixError, mix_in_child
from appliance.recorder.tracks import TrackFile
from appliance.recorder.workdir import WorkDir
from appliance.services.clock import wall_clock
from appliance.services.turn import TurnCredentialService

if TYPE_CHECKING:  # aiortc and PyAV are loaded at the first recording (`Recorder.load_media`)
    from appliance.recorder.peer import ParticipantPeer

log = logging.getLogger(__name__)

DONE_ACK_TIMEOUT = 30.0
MEDIA_POLL = 0.05
MAX_EARLY_CANDIDATES = 64
#: A recording is not started with less free space than this in the data dir.
MIN_FREE_BYTES = 64 * 1024 * 1024
RECONNECT_MIN, RECONNECT_MAX = 0.5, 10.0
#: A connection that lasted this long resets the reconnection backoff.
STABLE_CONNECTION = 30.0
#: The user id in the recorder's own TURN username (`<expiry>:0`): no user has id 0.
RECORDER_TURN_USER = 0

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]
Call = Callable[[str, dict[str, Any], float], Awaitable[Any]]


# -- payloads from web ------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")
    call_id: str = Field(min_length=1, max_length=64)
    recording_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class _Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: int = Field(ge=1)
    username: str = ""


class StartIn(_In):
    participants: list[_Person] = Field(min_length=1, max_length=8)
    media: dict[str, Any] = Field(default_factory=dict)


class _Description(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(pattern=r"^offer$")
    sdp: str = Field(min_length=10, max_length=64 * 1024)


class OfferIn(_In):
    user_id: int = Field(ge=1)
    offer: _Description


class IceIn(_In):
    user_id: int = Field(ge=1)
    candidate: dict[str, Any] | None = None


class StopIn(_In):
    reason: str = "stopped"


def _ok() -> dict[str, Any]:
    return {"ok": True}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def failure_reason(exc: BaseException) -> str:
    """The `failed` reason participants see for an exception while finishing."""
    if isinstance(exc, MixError):
        return exc.reason
    if isinstance(exc, StoreUnavailable):
        return "store_unavailable"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "disk_full"
    if getattr(exc, "errno", None) == errno.ENOSPC:  # PyAV's errors carry the errno too
        return "disk_full"
    return "recorder_error"


# -- one recording ------------------------------------------------------------------------------


@dataclass
class Session:
    call_id: str
    recording_id: str
    participants: list[int]
    folder: Path
    t0: float = field(default_factory=time.monotonic)
    wall0: float = field(default_factory=time.time)
    peers: dict[int, ParticipantPeer] = field(default_factory=dict)
    retired: list[ParticipantPeer] = field(default_factory=list)
    watcher: asyncio.Task[None] | None = None
    finisher: asyncio.Task[None] | None = None
    stopping: bool = False
    ice: dict[str, Any] | None = None
    ice_known: bool = False
    #: Candidates that came before their participant's offer was taken.
    early: dict[int, list[dict[str, Any] | None]] = field(default_factory=dict)

    @property
    def ref(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "recording_id": self.recording_id}

    def all_peers(self) -> list[ParticipantPeer]:
        return [*self.retired, *self.peers.values()]

    def has_all_media(self) -> bool:
        return all(
            (peer := self.peers.get(user)) is not None and peer.has_media
            for user in self.participants
        )


class Recorder:
    """The sessions and their work; talks to web through `emit` / `call` (a socket in the
    service, a fake in unit tests)."""

    def __init__(self, settings: Settings, emit: Emit, call: Call, web_url: str = "") -> None:
        self._settings = settings
        self._config = settings.config.recording
        self._web_host = urlsplit(web_url or self._config.web_url).hostname or "127.0.0.1"
        self._emit = emit
        self._call = call
        self.workdir = WorkDir(settings.data_dir)
        self._store: MinioObjectStore | None = None
        self.sessions: dict[str, Session] = {}
        self._turn = TurnCredentialService(settings.config.turn, wall_clock)
        self._media: asyncio.Task[None] | None = None
        #: Seconds the first recording waited for the media libraries (None: not loaded yet).
        self.media_load_seconds: float | None = None

    @property
    def store(self) -> MinioObjectStore:
        """Made at the first upload (with it, the minio SDK is loaded)."""
        if self._store is None:
            self._store = MinioObjectStore(self._settings.config.storage)
        return self._store

    def prepare(self) -> None:
        self.workdir.prepare()

    async def load_media(self) -> None:
        """Load aiortc and PyAV and install the pass-through (once, at the first recording):
        the recorder idles in less than half the memory until someone presses Record
        (docs/recording.md, "Memory"). The import runs in a thread, so the socket to web keeps
        being served meanwhile; concurrent callers wait for the same load; a failed load is
        tried again by the next recording."""
        if self._media is None:
            self._media = asyncio.create_task(asyncio.to_thread(self._import_media))
        try:
            await asyncio.shield(self._media)
        except Exception:
            self._media = None
            raise

    def _import_media(self) -> None:
        began = time.monotonic()
        from appliance.recorder import passthrough, peer  # noqa: F401 - loaded for what follows

        if self._config.passthrough:
            passthrough.install()
        if self._config.host_addresses:
            passthrough.restrict_host_addresses(list(self._config.host_addresses))
        self.media_load_seconds = time.monotonic() - began
        log.info("media libraries loaded in %.2f s", self.media_load_seconds)

    # -- events from web ------------------------------------------------------------------------

    async def start(self, data: Any) -> dict[str, Any]:
        try:
            request = StartIn.model_validate(data)
        except ValidationError:
            return _error("invalid_request", "malformed recorder:start")
        try:
            await self.load_media()  # first: nothing below waits, so its checks hold
        except Exception:
            log.exception("cannot load the media libraries")
            return _error("unavailable", "the recorder cannot load its media libraries")
        if request.recording_id in self.sessions:
            return _ok()  # a replay: that recording is already on
        active = [s for s in self.sessions.values() if not s.stopping]
        if len(active) >= self._config.max_concurrent:
            return _error("unavailable", "the recorder is recording as many calls as it may")
        try:
            if shutil.disk_usage(self._settings.data_dir).free < MIN_FREE_BYTES:
                raise OSError(errno.ENOSPC, "less than 64 MiB free in the data dir")
            folder = self.workdir.create(request.recording_id)
        except (OSError, ValueError) as exc:
            log.warning("cannot make a work folder: %s", exc)
            return _error("unavailable", "the recorder cannot write its files")
        session = Session(
            request.call_id,
            request.recording_id,
            [p.user_id for p in request.participants],
            folder,
        )
        self.sessions[session.recording_id] = session
        session.watcher = asyncio.create_task(self._watch(session))
        log.info("recording %s of call %s starts", session.recording_id, session.call_id)
        return _ok()

    def _session(self, recording_id: str, call_id: str) -> Session | None:
        session = self.sessions.get(recording_id)
        if session is None or session.call_id != call_id or session.stopping:
            return None
        return session

    async def _ice(self, session: Session) -> dict[str, Any] | None:
        """TURN/STUN for the recorder's own candidates, made as web makes them for users, when
        coturn answers (an unreachable server would only hold up candidate gathering). Asked
        once per recording."""
        if not session.ice_known:
            from appliance.adapters import stun_probe  # pystun3: loaded by the first recording

            turn = self._settings.config.turn
            host = turn.public_host or self._web_host
            if await stun_probe.alive(host, turn.port, wait=0.3):
                session.ice = self._turn.ice_servers(RECORDER_TURN_USER, host)
            session.ice_known = True
        return session.ice

    def _peer(self, session: Session, user_id: int, ice: dict[str, Any] | None) -> ParticipantPeer:
        from appliance.recorder.peer import ParticipantPeer  # loaded by `load_media`

        peer = ParticipantPeer(
            user_id,
            session.folder,
            passthrough=self._config.passthrough,
            t0=session.t0,
            ice=ice,
        )
        session.peers[user_id] = peer
        return peer

    async def offer(self, data: Any) -> dict[str, Any]:
        try:
            request = OfferIn.model_validate(data)
        except ValidationError:
            return _error("invalid_request", "malformed recorder:offer")
        session = self._session(request.recording_id, request.call_id)
        if session is None or request.user_id not in session.participants:
            return _error("not_found", "no such recording or participant")
        ice = await self._ice(session)  # the only wait before the peer is in place
        if session.stopping:
            return _error("not_found", "the recording stopped")
        old = session.peers.pop(request.user_id, None)
        if old is not None:
            session.retired.append(old)  # a new offer: the participant reconnected
        peer = self._peer(session, request.user_id, ice)
        for candidate in session.early.pop(request.user_id, []):
            await peer.add_candidate(candidate)
        try:
            answer = await peer.answer(request.offer.model_dump())
        except Exception as exc:
            log.info("offer from user %d not taken: %s", request.user_id, exc)
            if session.peers.get(request.user_id) is peer:
                del session.peers[request.user_id]
            await peer.abort()
            return _error("invalid_request", "the offer could not be answered")
        if session.stopping:
            return _error("not_found", "the recording stopped")
        await self._emit(
            "recorder:answer", {**session.ref, "user_id": request.user_id, "answer": answer}
        )
        return _ok()

    async def candidate(self, data: Any) -> dict[str, Any]:
        try:
            request = IceIn.model_validate(data)
        except ValidationError:
            return _error("invalid_request", "malformed recorder:ice-candidate")
        session = self._session(request.recording_id, request.call_id)
        if session is None or request.user_id not in session.participants:
            return _error("not_found", "no such recording or participant")
        peer = session.peers.get(request.user_id)
        if peer is None:  # the candidate overtook the offer: keep it for the peer to come
            early = session.early.setdefault(request.user_id, [])
            if len(early) >= MAX_EARLY_CANDIDATES:
                return _error("invalid_request", "too many candidates before the offer")
            early.append(request.candidate)
            return _ok()
        await peer.add_candidate(request.candidate)
        return _ok()

    async def stop(self, data: Any) -> dict[str, Any]:
        try:
            request = StopIn.model_validate(data)
        except ValidationError:
            return _error("invalid_request", "malformed recorder:stop")
        session = self._session(request.recording_id, request.call_id)
        if session is None:
            return _ok()  # already stopping, or unknown: nothing to do
        session.stopping = True
        if session.watcher is not None:
            session.watcher.cancel()
        session.finisher = asyncio.create_task(self._finish(session))
        return _ok()

    # -- the work -------------------------------------------------------------------------------

    async def _watch(self, session: Session) -> None:
        """Report `recording` once every participant's media is in; fail on the start timeout;
        fail when writing a track fails (disk full)."""
        deadline = session.t0 + self._config.start_timeout
        reported = False
        while True:
            await asyncio.sleep(MEDIA_POLL)
            for peer in session.all_peers():
                for sink in peer.sinks:
                    if sink.error is not None:
                        await self._fail(session, failure_reason(sink.error))
                        return
            if not reported and session.has_all_media():
                reported = True
                await self._emit("recorder:state", {**session.ref, "state": "recording"})
            elif not reported and time.monotonic() > deadline:
                log.warning(
                    "recording %s: no media from everyone: %s",
                    session.recording_id,
                    {
                        user: (
                            peer.pc.connectionState,
                            [s.first_frame.is_set() for s in peer.sinks],
                        )
                        for user, peer in session.peers.items()
                    },
                )
                await self._fail(session, "timeout")
                return

    async def _fail(self, session: Session, reason: str) -> None:
        """Give up a recording: drop its files, tell web."""
        session.stopping = True
        log.warning("recording %s failed: %s", session.recording_id, reason)
        await self._discard(session)
        await self._emit("recorder:failed", {**session.ref, "reason": reason})

    async def _discard(self, session: Session) -> None:
        for peer in session.all_peers():
            await peer.abort()
        self.workdir.remove(session.recording_id)
        self.sessions.pop(session.recording_id, None)

    async def _finish(self, session: Session) -> None:
        try:
            await self._produce(session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = failure_reason(exc)
            if reason == "recorder_error":
                log.exception("recording %s could not be finished", session.recording_id)
            else:
                log.warning("recording %s could not be finished: %s", session.recording_id, reason)
            await self._discard(session)
            await self._emit("recorder:failed", {**session.ref, "reason": reason})
        finally:
            self.workdir.remove(session.recording_id)
            self.sessions.pop(session.recording_id, None)

    async def _produce(self, session: Session) -> None:
        """Finish the files, mix, upload, report done (nothing is reported before the object
        is complete in the store)."""
        by_user: dict[int, list[TrackFile]] = {user: [] for user in session.participants}
        for peer in session.all_peers():  # every track ends at the same moment
            await peer.halt()
        for peer in session.all_peers():
            by_user.setdefault(peer.user_id, []).extend(await peer.close())
        inputs = [by_user[user] for user in session.participants]
        if not any(t.frames for group in inputs for t in group):
            raise MixError("no_media", "no media reached the recorder")
        log.info(
            "recording %s tracks: %s",
            session.recording_id,
            ", ".join(
                f"{t.path.name} at {t.start_offset:.2f} s, {t.frames} frames"
                for g in inputs
                for t in g
            ),
        )
        output = session.folder / "recording.webm"
        result = await mix_in_child(inputs, output)
        first = min(t.start_offset for group in inputs for t in group if t.frames)
        started_at = session.wall0 + first
        key = f"recordings/{session.recording_id}.webm"
        await self.store.upload(key, output, result.content_type)
        done = {
            **session.ref,
            "key": key,
            "size": result.size,
            "duration": round(result.duration, 3),
            "content_type": result.content_type,
            "started_at": started_at,
            "ended_at": started_at + result.duration,
        }
        ack = await self._call("recorder:done", done, DONE_ACK_TIMEOUT)
        if not (isinstance(ack, dict) and ack.get("ok") is True):
            log.warning("web did not take recording %s: %s", session.recording_id, ack)
            with contextlib.suppress(Exception):
                await self.store.remove(key)
            return
        log.info(
            "recording %s ready: %.1f s, %d bytes",
            session.recording_id,
            result.duration,
            result.size,
        )

    async def abort_all(self) -> None:
        """web went away: drop every recording and its files (web fails them)."""
        for session in list(self.sessions.values()):
            session.stopping = True
            for task in (session.watcher, session.finisher):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await self._discard(session)
        self.sessions.clear()


# -- the socket -----------------------------------------------------------------------------------


class RecorderService:
    """Connects to web (again and again, with backoff, while it is away) and serves it."""

    def __init__(self, settings: Settings, web_url: str) -> None:
        self._settings = settings
        self._url = web_url
        self._sio = socketio.AsyncClient(reconnection=False)
        self.recorder = Recorder(settings, self._emit, self._ask, web_url)
        self._gone = asyncio.Event()
        sio = self._sio
        sio.on("recorder:start", self.recorder.start)
        sio.on("recorder:offer", self.recorder.offer)
        sio.on("recorder:ice-candidate", self.recorder.candidate)
        sio.on("recorder:stop", self.recorder.stop)
        sio.on("disconnect", self._on_disconnect)

    async def _emit(self, event: str, payload: dict[str, Any]) -> None:
        if self._sio.connected:
            with contextlib.suppress(socketio.exceptions.SocketIOError):
                await self._sio.emit(event, payload)

    async def _ask(self, event: str, payload: dict[str, Any], within: float) -> Any:
        try:
            return await self._sio.call(event, payload, timeout=within)
        except socketio.exceptions.SocketIOError as exc:
            return _error("unavailable", type(exc).__name__)

    async def _on_disconnect(self, reason: Any = None) -> None:
        self._gone.set()

    async def run(self, stop: asyncio.Event) -> None:
        self.recorder.prepare()
        key = ensure_service_key(self._settings.data_dir)
        # One HTTP session owned here, so failed connects leave nothing unclosed behind.
        async with aiohttp.ClientSession() as http:
            self._sio.eio.http = http
            self._sio.eio.external_http = True
            await self._serve(stop, key)
        await self.recorder.abort_all()

    async def _serve(self, stop: asyncio.Event, key: str) -> None:
        delay = RECONNECT_MIN
        while not stop.is_set():
            self._gone.clear()
            try:
                await self._sio.connect(
                    self._url,
                    auth={"service": "recorder", "key": key},
                    transports=["websocket"],
                    socketio_path="socket.io",
                    wait_timeout=10,
                )
            except (socketio.exceptions.ConnectionError, OSError, ValueError) as exc:
                log.debug("web not reachable at %s: %s", self._url, exc)
                if await _wait(stop, delay):
                    return
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("connected to web at %s", self._url)
            since = time.monotonic()
            await _first(stop.wait(), self._gone.wait())
            if self._sio.connected:
                await self._sio.disconnect()
            await self.recorder.abort_all()
            if stop.is_set():
                return
            log.warning("lost the connection to web; recordings in progress are dropped")
            if time.monotonic() - since > STABLE_CONNECTION:
                delay = RECONNECT_MIN
            if await _wait(stop, delay):
                return
            delay = min(delay * 2, RECONNECT_MAX)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, or return True at once when stopping."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def _first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def default_web_url(settings: Settings) -> str:
    configured = settings.config.recording.web_url
    return configured or f"http://127.0.0.1:{settings.config.web.port}"


async def serve(settings: Settings, web_url: str) -> None:
    """Run until SIGTERM/SIGINT."""
    import signal

    if not log.isEnabledFor(logging.DEBUG):
        # aioice reports every ICE check at INFO: one line per candidate pair and state.
        for name in ("aioice", "aiortc"):
            logging.getLogger(name).setLevel(logging.WARNING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await RecorderService(settings, web_url).run(stop)
