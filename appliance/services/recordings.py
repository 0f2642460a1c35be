"""Call recording, the web side: who may record, the state per call, the recorder's socket.

The recording itself happens in the `recorder` service, a Socket.IO client of `web` with a
service identity (docs/recording.md). Here:

- `record`: a participant's bound socket starts or stops recording an active call. Start asks the
  recorder (`recorder:start`, with an ack) and tells both participants `call:recording`.
- Signaling between each participant's bound socket and the recorder (`recorder:offer`,
  `recorder:answer`, `recorder:ice-candidate`) is relayed here, never anywhere else.
- The recorder reports `recorder:state` (media arrived), `recorder:failed`, `recorder:done`
  (uploaded; checked against the store before the recording is `ready`).
- The recorder's socket going away fails every recording in progress (`recorder_lost`).
- HTTP: list, pre-signed download and delete for participants; retention cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from appliance.adapters.object_store import ObjectStore, StoreUnavailable, content_disposition
from appliance.config import RecordingConfig, StorageConfig
from appliance.errors import AppError, ErrorCode
from appliance.observability.metrics import Metrics
from appliance.services.calls import Call, CallService, CallState
from appliance.services.clock import Clock
from appliance.services.notifier import Notifier
from appliance.storage.recordings import (
    Finished,
    NewRecording,
    RecordingRecord,
    RecordingRepository,
)

log = logging.getLogger(__name__)

CALL_RECORDING = "call:recording"
RECORDING_READY = "recording:ready"
RECORDER_START = "recorder:start"
RECORDER_STOP = "recorder:stop"
RECORDER_OFFER = "recorder:offer"
RECORDER_ANSWER = "recorder:answer"
RECORDER_ICE = "recorder:ice-candidate"
START_TIMEOUT = 10.0
DAY = 86_400.0
REASON = re.compile(r"[a-z][a-z_]{0,39}")


class RecordingState(StrEnum):
    STARTING = "starting"
    RECORDING = "recording"
    STOPPED = "stopped"
    FAILED = "failed"


class StopReason(StrEnum):
    STOPPED = "stopped"
    PARTICIPANT_LEFT = "participant_left"
    CALL_ENDED = "call_ended"


class RecorderChannel(Protocol):
    """How the service reaches the recorder's socket (Socket.IO in the transport layer)."""

    async def call(self, sid: str, event: str, payload: dict[str, Any], ack_within: float) -> Any:
        """Send with an ack and return the ack's data; `TimeoutError` when none comes."""
        ...

    async def send(self, sid: str, event: str, payload: dict[str, Any]) -> None: ...
    async def disconnect(self, sid: str) -> None: ...


@dataclass(slots=True)
class Session:
    """A recording in progress (starting or recording) of one call."""

    recording_id: str
    call_id: str
    by: dict[str, Any]
    state: RecordingState = RecordingState.STARTING


def person(user_id: int, username: str) -> dict[str, Any]:
    return {"user_id": user_id, "username": username}


def listing_entry(record: RecordingRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "call_id": record.call_id,
        "status": record.status,
        "started_by": person(record.started_by, record.started_by_name),
        "participants": [
            person(record.caller_id, record.caller_name),
            person(record.callee_id, record.callee_name),
        ],
        "started_at": record.started_at if record.started_at is not None else record.created_at,
        "ended_at": record.ended_at,
        "duration": record.duration,
        "size": record.size,
        "content_type": record.content_type,
    }


class RecordingService:
    def __init__(
        self,
        config: RecordingConfig,
        storage: StorageConfig,
        store: ObjectStore,
        repo: RecordingRepository,
        calls: CallService,
        notifier: Notifier,
        channel: RecorderChannel | None,
        base_url: Callable[[str], str],
        clock: Clock,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._storage = storage
        self._store = store
        self._repo = repo
        self._calls = calls
        self._notifier = notifier
        self._channel = channel
        self._base_url = base_url
        self._clock = clock
        self._recorder_sid: str | None = None
        self._by_call: dict[str, Session] = {}
        self._by_recording: dict[str, Session] = {}
        self._cleaner: asyncio.Task[None] | None = None
        calls.add_listener(self)

    async def start(self) -> None:
        failed = await self._repo.fail_processing("server_restart", self._clock())
        self._counted("failed", failed)
        if failed:
            log.info("%d recordings left processing by a restart failed", failed)
        self._cleaner = asyncio.create_task(self._clean_periodically(), name="recording-cleanup")

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.gather(self._cleaner, return_exceptions=True)
            self._cleaner = None

    # -- the recorder's socket --------------------------------------------------------------

    @property
    def in_progress(self) -> int:
        """Recordings starting or running now (for /metrics)."""
        return len(self._by_call)

    def _counted(self, state: str, count: int = 1) -> None:
        if self._metrics is not None and count:
            self._metrics.recording(state, count)

    @property
    def recorder_up(self) -> bool:
        return self._recorder_sid is not None

    def is_recorder(self, sid: str) -> bool:
        return sid == self._recorder_sid

    async def recorder_connected(self, sid: str) -> None:
        """A recorder authenticated (this runs inside its handshake). A new one replaces the
        old one, whose recordings fail first. Meanwhile there is no recorder: a start then is
        `unavailable`, not sent to the new socket (it could not ack before its handshake is
        done) nor failed along with the old one's recordings."""
        while (old := self._recorder_sid) is not None and old != sid:
            self._recorder_sid = None
            log.info("a new recorder connection replaces the old one")
            await self._recorder_lost()
            if self._channel is not None:
                await self._channel.disconnect(old)
        self._recorder_sid = sid

    async def recorder_gone(self, sid: str) -> None:
        if sid != self._recorder_sid:
            return
        self._recorder_sid = None
        await self._recorder_lost()

    async def _recorder_lost(self) -> None:
        for session in list(self._by_call.values()):
            await self._fail(session.call_id, session.recording_id, "recorder_lost")
        self._counted("failed", await self._repo.fail_processing("recorder_lost", self._clock()))

    # -- participants: start and stop -------------------------------------------------------

    async def _bound_call(self, user_id: int, sid: str, call_id: str) -> Call:
        call = await self._calls.get(call_id)
        if call is None or not call.has(user_id):
            raise AppError(ErrorCode.FORBIDDEN, "you are not in that call")
        if call.state is CallState.RINGING:
            raise AppError(ErrorCode.CONFLICT, "the call has not been answered yet")
        if call.sid_of(user_id) != sid:
            raise AppError(ErrorCode.FORBIDDEN, "the call is not on this socket")
        return call

    async def record(
        self, user_id: int, username: str, sid: str, call_id: str, action: str
    ) -> dict[str, Any]:
        call = await self._bound_call(user_id, sid, call_id)
        if not self._config.enabled:
            raise AppError(ErrorCode.RECORDING_DISABLED, "recording is disabled on this server")
        session = self._by_call.get(call.id)
        if action == "stop":
            if session is None:
                return {"call_id": call.id, "recording_id": None, "state": "stopped"}
            await self._stop(call, session, StopReason.STOPPED, person(user_id, username))
            return {
                "call_id": call.id,
                "recording_id": session.recording_id,
                "state": RecordingState.STOPPED.value,
            }
        if session is None:
            session = await self._start(call, person(user_id, username))
        return {
            "call_id": call.id,
            "recording_id": session.recording_id,
            "state": session.state.value,
        }

    async def _start(self, call: Call, by: dict[str, Any]) -> Session:
        recorder = self._recorder_sid
        if recorder is None or self._channel is None:
            raise AppError(ErrorCode.UNAVAILABLE, "the recorder service is not running")
        if len(self._by_call) >= self._config.max_concurrent:
            raise AppError(ErrorCode.UNAVAILABLE, "too many calls are being recorded; try later")
        session = Session(secrets.token_urlsafe(16), call.id, by)
        self._by_call[call.id] = session
        self._by_recording[session.recording_id] = session
        now = self._clock()
        await self._repo.add(
            NewRecording(
                session.recording_id,
                call.id,
                by["user_id"],
                f"recordings/{session.recording_id}.webm",
                now,
            )
        )
        request = {
            "call_id": call.id,
            "recording_id": session.recording_id,
            "participants": [
                person(call.caller_id, call.caller_name),
                person(call.callee_id, call.callee_name),
            ],
            "media": call.media,
        }
        refusal = await self._ask_recorder(recorder, request)
        if self._by_call.get(call.id) is not session:
            # Stopped (the stop went to the recorder already) or failed while it was asked.
            if refusal is not None and await self._repo.mark_failed(
                session.recording_id, refusal[0], self._clock()
            ):
                self._counted("failed")
            if session.state is RecordingState.FAILED:
                raise AppError(ErrorCode.UNAVAILABLE, "the recording failed while starting")
            return session
        if refusal is not None:
            reason, error = refusal
            await self._fail(call.id, session.recording_id, reason)
            raise error
        self._counted("started")
        await self._announce(call, session, RecordingState.STARTING, session.by)
        return session

    async def _ask_recorder(
        self, recorder: str, request: dict[str, Any]
    ) -> tuple[str, AppError] | None:
        """`recorder:start`; None when the recorder took it, else the failure reason for the
        participants and the error for the starter."""
        assert self._channel is not None
        try:
            ack = await self._channel.call(recorder, RECORDER_START, request, START_TIMEOUT)
        except TimeoutError:
            return "unavailable", AppError(ErrorCode.UNAVAILABLE, "the recorder did not answer")
        except Exception as exc:  # the recorder's socket went away meanwhile
            log.warning("recorder:start failed: %s", type(exc).__name__)
            return "unavailable", AppError(ErrorCode.UNAVAILABLE, "the recorder is not reachable")
        if isinstance(ack, dict) and ack.get("ok") is True:
            return None
        reason, message = "unavailable", "the recorder refused to record"
        error = ack.get("error") if isinstance(ack, dict) else None
        if isinstance(error, dict):
            code, detail = error.get("code"), error.get("message")
            if isinstance(code, str) and REASON.fullmatch(code):
                reason = code
            if isinstance(detail, str) and detail:
                message = f"the recorder refused: {detail[:200]}"
        return reason, AppError(ErrorCode.UNAVAILABLE, message)

    async def _stop(
        self, call: Call, session: Session, reason: StopReason, by: dict[str, Any] | None
    ) -> None:
        if not self._forget(session, RecordingState.STOPPED):
            return
        await self._to_recorder(
            RECORDER_STOP,
            {"call_id": call.id, "recording_id": session.recording_id, "reason": reason.value},
        )
        extra = {} if reason is StopReason.STOPPED else {"reason": reason.value}
        await self._announce(call, session, RecordingState.STOPPED, by, **extra)

    def _forget(self, session: Session, state: RecordingState) -> bool:
        """Take a session out of the running ones; False when it was already out."""
        if self._by_call.get(session.call_id) is not session:
            return False
        session.state = state
        del self._by_call[session.call_id]
        self._by_recording.pop(session.recording_id, None)
        return True

    async def _fail(self, call_id: str, recording_id: str, reason: str) -> None:
        """Fail a recording: the row, the running session, and tell the participants if the
        call is still on."""
        session = self._by_recording.get(recording_id)
        if session is not None:
            self._forget(session, RecordingState.FAILED)
        if await self._repo.mark_failed(recording_id, reason, self._clock()):
            self._counted("failed")
        call = await self._calls.get(call_id)
        if call is not None:
            payload = {
                "call_id": call_id,
                "recording_id": recording_id,
                "state": RecordingState.FAILED.value,
                "by": None,
                "reason": reason,
            }
            await self._to_participants(call, payload)

    async def _announce(
        self,
        call: Call,
        session: Session,
        state: RecordingState,
        by: dict[str, Any] | None,
        **extra: Any,
    ) -> None:
        payload = {
            "call_id": call.id,
            "recording_id": session.recording_id,
            "state": state.value,
            "by": by,
            **extra,
        }
        await self._to_participants(call, payload)

    async def _to_participants(self, call: Call, payload: dict[str, Any]) -> None:
        for sid in (call.caller_sid, call.callee_sid):
            if sid is not None:
                await self._notifier.to_socket(sid, CALL_RECORDING, payload)

    async def _to_recorder(self, event: str, payload: dict[str, Any]) -> None:
        if self._recorder_sid is not None and self._channel is not None:
            await self._channel.send(self._recorder_sid, event, payload)

    # -- CallListener: the call ends or a participant leaves -------------------------------

    async def call_ended(self, call: Call) -> None:
        session = self._by_call.get(call.id)
        if session is not None:
            await self._stop(call, session, StopReason.CALL_ENDED, None)

    async def participant_left(self, call: Call, user_id: int) -> None:
        session = self._by_call.get(call.id)
        if session is not None:
            await self._stop(call, session, StopReason.PARTICIPANT_LEFT, None)

    # -- signaling between a participant's bound socket and the recorder ------------------

    async def from_participant(
        self, user_id: int, sid: str, event: str, call_id: str, body: dict[str, Any]
    ) -> None:
        """`recorder:offer` / `recorder:ice-candidate` from a participant, to the recorder."""
        call = await self._calls.get(call_id)
        if (
            call is None
            or not call.has(user_id)
            or call.state is not CallState.ACTIVE
            or call.sid_of(user_id) != sid
        ):
            raise AppError(ErrorCode.FORBIDDEN, "this socket is not in that active call")
        session = self._by_call.get(call.id)
        if session is None:
            raise AppError(ErrorCode.FORBIDDEN, "that call is not being recorded")
        if self._recorder_sid is None or self._channel is None:
            raise AppError(ErrorCode.UNAVAILABLE, "the recorder service is not running")
        await self._channel.send(
            self._recorder_sid,
            event,
            {"call_id": call.id, "recording_id": session.recording_id, "user_id": user_id, **body},
        )

    async def from_recorder(
        self, event: str, call_id: str, recording_id: str, user_id: int, body: dict[str, Any]
    ) -> None:
        """`recorder:answer` / `recorder:ice-candidate` from the recorder, to the participant's
        bound socket."""
        session = self._by_recording.get(recording_id)
        if session is None or session.call_id != call_id:
            raise AppError(ErrorCode.NOT_FOUND, "no such recording in progress")
        call = await self._calls.get(call_id)
        if call is None or not call.has(user_id):
            raise AppError(ErrorCode.NOT_FOUND, "no such participant")
        sid = call.sid_of(user_id)
        if sid is None:
            raise AppError(ErrorCode.UNAVAILABLE, "that participant is reconnecting")
        await self._notifier.to_socket(sid, event, {"call_id": call_id, **body})

    # -- reports from the recorder ----------------------------------------------------------

    async def recorder_state(self, call_id: str, recording_id: str) -> None:
        """Media from every participant reached the recorder."""
        session = self._by_recording.get(recording_id)
        if session is None or session.call_id != call_id:
            return  # stopped meanwhile: nothing to announce
        if session.state is RecordingState.RECORDING:
            return
        session.state = RecordingState.RECORDING
        call = await self._calls.get(call_id)
        if call is not None:
            await self._announce(call, session, RecordingState.RECORDING, session.by)

    async def recorder_failed(self, call_id: str, recording_id: str, reason: str) -> None:
        record = await self._repo.get(recording_id)
        if record is None or record.call_id != call_id:
            raise AppError(ErrorCode.NOT_FOUND, "no such recording")
        if record.status != "processing":
            return  # replayed, or already settled
        await self._fail(call_id, recording_id, reason)

    async def recorder_done(
        self, call_id: str, recording_id: str, key: str, done: Finished
    ) -> None:
        """The recorder uploaded the file: check it is in the store, then it is ready."""
        record = await self._repo.get(recording_id)
        if record is None or record.call_id != call_id:
            raise AppError(ErrorCode.NOT_FOUND, "no such recording")
        if record.status == "ready":
            return  # a replay
        if record.status != "processing":
            raise AppError(ErrorCode.CONFLICT, "that recording failed")
        if key != record.object_key:
            raise AppError(ErrorCode.INVALID_REQUEST, f"the key must be {record.object_key!r}")
        try:
            found = await self._store.stat(key)
        except StoreUnavailable:
            await self._fail(call_id, recording_id, "store_unavailable")
            raise AppError(ErrorCode.STORAGE_UNAVAILABLE, "file storage is unavailable") from None
        if found is None or found.size != done.size:
            with contextlib.suppress(StoreUnavailable):
                await self._store.remove(key)
            await self._fail(call_id, recording_id, "upload_missing")
            code = ErrorCode.UPLOAD_MISSING if found is None else ErrorCode.UPLOAD_MISMATCH
            raise AppError(code, "the stored file is missing or not the size reported")
        session = self._by_recording.get(recording_id)
        if session is not None:
            self._forget(session, RecordingState.STOPPED)
        if await self._repo.mark_ready(recording_id, done):
            self._counted("ready")
            payload = {"recording_id": recording_id, "call_id": call_id}
            for user_id in (record.caller_id, record.callee_id):
                await self._notifier.to_user(user_id, RECORDING_READY, payload)

    # -- HTTP -------------------------------------------------------------------------------

    async def list_of(self, user_id: int) -> list[dict[str, Any]]:
        return [listing_entry(r) for r in await self._repo.of_user(user_id)]

    async def _visible(self, user_id: int, recording_id: str) -> RecordingRecord:
        record = await self._repo.get(recording_id) if len(recording_id) <= 64 else None
        if record is None or not record.has(user_id):
            raise AppError(ErrorCode.NOT_FOUND, "no such recording")
        return record

    async def download_url(self, user_id: int, recording_id: str, origin: str) -> str:
        record = await self._visible(user_id, recording_id)
        if record.status != "ready":
            raise AppError(ErrorCode.CONFLICT, "the recording is not ready")
        return self._store.presign_get(
            self._base_url(origin),
            record.object_key,
            self._storage.download_url_ttl,
            record.content_type or "video/webm",
            content_disposition("inline", f"recording-{record.id}.webm"),
        )

    async def delete(self, user_id: int, recording_id: str) -> None:
        record = await self._visible(user_id, recording_id)
        if record.status == "processing":
            raise AppError(ErrorCode.CONFLICT, "the recording is still being processed")
        try:
            await self._store.remove(record.object_key)
        except StoreUnavailable:
            raise AppError(ErrorCode.STORAGE_UNAVAILABLE, "file storage is unavailable") from None
        await self._repo.delete(record.id)

    # -- retention --------------------------------------------------------------------------

    async def cleanup(self, now: float) -> int:
        """Delete ready and failed recordings past retention, object first. Returns how many."""
        removed = 0
        before = now - self._config.retention_days * DAY
        for record in await self._repo.expired(before):
            try:
                await self._store.remove(record.object_key)
            except StoreUnavailable:
                break  # next round; the row stays until its object is gone
            await self._repo.delete(record.id)
            removed += 1
        return removed

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._config.cleanup_interval)
            try:
                removed = await self.cleanup(self._clock())
                if removed:
                    log.info("removed %d recordings past retention", removed)
            except Exception:
                log.exception("cleaning old recordings failed")
