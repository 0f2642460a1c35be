"""Socket.IO events of 1:1 calls: the seed's call flow and the WebRTC signaling relay."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.services.auth import Principal
from appliance.services.calls import CallService, Signal
from appliance.services.ratelimit import EventClass
from appliance.transport.realtime.gateway import RealtimeGateway

CallId = Annotated[str, Field(min_length=1, max_length=64)]
MAX_SDP = 100_000


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Media(Payload):
    audio: bool = True
    video: bool = True


class StartIn(Payload):
    callee_id: int = Field(ge=1, le=2**63 - 1)
    media: Media = Media()


class CallIn(Payload):
    call_id: CallId


class Description(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["offer", "answer"]
    sdp: str = Field(min_length=10, max_length=MAX_SDP)

    @field_validator("sdp")
    @classmethod
    def _looks_like_sdp(cls, value: str) -> str:
        if not value.startswith("v=0") or "\nm=" not in value:
            raise ValueError("not an SDP session description")
        if "\x00" in value:
            raise ValueError("SDP contains NUL")
        return value


class Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)
    candidate: str = Field(max_length=1024)
    sdpMid: str | None = Field(default=None, max_length=64)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=255)
    usernameFragment: str | None = Field(default=None, max_length=256)

    @field_validator("candidate")
    @classmethod
    def _looks_like_candidate(cls, value: str) -> str:
        if value and not value.removeprefix("a=").startswith("candidate:"):
            raise ValueError("not an ICE candidate line")
        return value


class SignalIn(Payload):
    call_id: CallId | None = None
    to: Any = None  # accepted for the seed's shape, never used: the server picks the peer


class OfferIn(SignalIn):
    offer: Description


class AnswerIn(SignalIn):
    answer: Description


class IceIn(SignalIn):
    candidate: Candidate | None  # null: end of candidates


def register_call_events(gateway: RealtimeGateway, calls: CallService) -> None:
    signaling = EventClass.SIGNALING

    @gateway.on("call:start", StartIn, signaling)
    async def start(sid: str, who: Principal, data: StartIn) -> dict[str, Any]:
        call_id = await calls.start_call(
            who.user_id, who.username, sid, data.callee_id, data.media.audio, data.media.video
        )
        return {"call_id": call_id}

    @gateway.on("call:accepted", CallIn, signaling)
    async def accepted(sid: str, who: Principal, data: CallIn) -> dict[str, Any]:
        call = await calls.accept(who.user_id, sid, data.call_id)
        return {"call_id": call.id}

    @gateway.on("call:rejected", CallIn, signaling)
    async def rejected(sid: str, who: Principal, data: CallIn) -> dict[str, Any]:
        await calls.reject(who.user_id, sid, data.call_id)
        return {"call_id": data.call_id}

    @gateway.on("call:end", CallIn, signaling)
    async def end(sid: str, who: Principal, data: CallIn) -> dict[str, Any]:
        await calls.hang_up(who.user_id, sid, data.call_id)
        return {"call_id": data.call_id}

    @gateway.on("call:resume", CallIn, signaling)
    async def resume(sid: str, who: Principal, data: CallIn) -> dict[str, Any]:
        return await calls.resume(who.user_id, sid, data.call_id)

    @gateway.on(Signal.OFFER.value, OfferIn, signaling)
    async def offer(sid: str, who: Principal, data: OfferIn) -> dict[str, Any]:
        body = {"offer": data.offer.model_dump()}
        await calls.relay(who.user_id, sid, Signal.OFFER, data.call_id, body)
        return {}

    @gateway.on(Signal.ANSWER.value, AnswerIn, signaling)
    async def answer(sid: str, who: Principal, data: AnswerIn) -> dict[str, Any]:
        body = {"answer": data.answer.model_dump()}
        await calls.relay(who.user_id, sid, Signal.ANSWER, data.call_id, body)
        return {}

    @gateway.on(Signal.ICE_CANDIDATE.value, IceIn, signaling)
    async def ice(sid: str, who: Principal, data: IceIn) -> dict[str, Any]:
        candidate = data.candidate.model_dump(exclude_none=True) if data.candidate else None
        await calls.relay(
            who.user_id, sid, Signal.ICE_CANDIDATE, data.call_id, {"candidate": candidate}
        )
        return {}
