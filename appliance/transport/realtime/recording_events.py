"""Socket.IO events of call recording: participants' `call:record` and their signaling with the
recorder, and the recorder service's own events (its socket only)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import socketio
from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import AppError, ErrorCode
from appliance.services.auth import Principal
from appliance.services.ratelimit import EventClass
from appliance.services.recordings import (
    RECORDER_ANSWER,
    RECORDER_ICE,
    RECORDER_OFFER,
    RecordingService,
)
from appliance.storage.recordings import Finished
from appliance.transport.realtime.call_events import Candidate, Description
from appliance.transport.realtime.gateway import RealtimeGateway

CallId = Annotated[str, Field(min_length=1, max_length=64)]
RecordingId = Annotated[str, Field(min_length=1, max_length=64)]
UserId = Annotated[int, Field(ge=1, le=2**63 - 1)]
Reason = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,39}$")]
Seconds = Annotated[float, Field(ge=0, le=2**40)]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RecordIn(Payload):
    call_id: CallId
    action: Literal["start", "stop"]


class OfferDescription(Description):
    type: Literal["offer"]


class AnswerDescription(Description):
    type: Literal["answer"]


class ParticipantOfferIn(Payload):
    call_id: CallId
    offer: OfferDescription


class ParticipantIceIn(Payload):
    call_id: CallId
    candidate: Candidate | None  # null: end of candidates


class RecorderRef(Payload):
    call_id: CallId
    recording_id: RecordingId


class RecorderAnswerIn(RecorderRef):
    user_id: UserId
    answer: AnswerDescription


class RecorderIceIn(RecorderRef):
    user_id: UserId
    candidate: Candidate | None


class RecorderStateIn(RecorderRef):
    state: Literal["recording"]


class RecorderFailedIn(RecorderRef):
    reason: Reason


class RecorderDoneIn(RecorderRef):
    key: str = Field(min_length=1, max_length=200)
    size: int = Field(ge=1, le=2**53)
    duration: Seconds
    content_type: Literal["video/webm", "audio/webm"]
    started_at: Seconds
    ended_at: Seconds


class SocketRecorderChannel:
    """`RecorderChannel` over the Socket.IO server."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio

    async def call(self, sid: str, event: str, payload: dict[str, Any], ack_within: float) -> Any:
        try:
            return await self._sio.call(event, payload, to=sid, timeout=ack_within)
        except socketio.exceptions.TimeoutError:
            raise TimeoutError(event) from None

    async def send(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        await self._sio.emit(event, payload, to=sid)

    async def disconnect(self, sid: str) -> None:
        await self._sio.disconnect(sid)


def candidate_of(candidate: Candidate | None) -> dict[str, Any] | None:
    return candidate.model_dump(exclude_none=True) if candidate else None


def register_recording_events(gateway: RealtimeGateway, recordings: RecordingService) -> None:
    signaling = EventClass.SIGNALING

    # -- participants ----------------------------------------------------------------------

    @gateway.on("call:record", RecordIn, signaling)
    async def record(sid: str, who: Principal, data: RecordIn) -> dict[str, Any]:
        return await recordings.record(who.user_id, who.username, sid, data.call_id, data.action)

    @gateway.on(RECORDER_OFFER, ParticipantOfferIn, signaling)
    async def offer(sid: str, who: Principal, data: ParticipantOfferIn) -> dict[str, Any]:
        body = {"offer": data.offer.model_dump()}
        await recordings.from_participant(who.user_id, sid, RECORDER_OFFER, data.call_id, body)
        return {}

    @gateway.on(RECORDER_ICE, ParticipantIceIn, signaling)
    async def ice(sid: str, who: Principal, data: ParticipantIceIn) -> dict[str, Any]:
        body = {"candidate": candidate_of(data.candidate)}
        await recordings.from_participant(who.user_id, sid, RECORDER_ICE, data.call_id, body)
        return {}

    # -- the recorder service ----------------------------------------------------------------

    def current(sid: str) -> None:
        """A replaced recorder socket (being disconnected) speaks for no recording."""
        if not recordings.is_recorder(sid):
            raise AppError(ErrorCode.FORBIDDEN, "this recorder connection was replaced")

    @gateway.on_service(RECORDER_ANSWER, RecorderAnswerIn)
    async def answer(sid: str, data: RecorderAnswerIn) -> dict[str, Any]:
        current(sid)
        body = {"answer": data.answer.model_dump()}
        await recordings.from_recorder(
            RECORDER_ANSWER, data.call_id, data.recording_id, data.user_id, body
        )
        return {}

    @gateway.on_service(RECORDER_ICE, RecorderIceIn)
    async def recorder_ice(sid: str, data: RecorderIceIn) -> dict[str, Any]:
        current(sid)
        body = {"candidate": candidate_of(data.candidate)}
        await recordings.from_recorder(
            RECORDER_ICE, data.call_id, data.recording_id, data.user_id, body
        )
        return {}

    @gateway.on_service("recorder:state", RecorderStateIn)
    async def state(sid: str, data: RecorderStateIn) -> dict[str, Any]:
        current(sid)
        await recordings.recorder_state(data.call_id, data.recording_id)
        return {}

    @gateway.on_service("recorder:failed", RecorderFailedIn)
    async def failed(sid: str, data: RecorderFailedIn) -> dict[str, Any]:
        current(sid)
        await recordings.recorder_failed(data.call_id, data.recording_id, data.reason)
        return {}

    @gateway.on_service("recorder:done", RecorderDoneIn)
    async def done(sid: str, data: RecorderDoneIn) -> dict[str, Any]:
        current(sid)
        finished = Finished(
            data.content_type, data.size, data.duration, data.started_at, data.ended_at
        )
        await recordings.recorder_done(data.call_id, data.recording_id, data.key, finished)
        return {}
