"""Socket.IO events of the chat: messages, edits, deletes, read receipts, typing, catch-up."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.observability.metrics import Metrics
from appliance.services.auth import Principal
from appliance.services.chat import ChatService
from appliance.services.ratelimit import EventClass
from appliance.transport.realtime.gateway import RealtimeGateway

RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]
MAX_TEXT_FIELD = 100_000  # the service applies the configured, smaller limit


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MessageIn(Payload):
    room_id: RowId
    text: str = Field(max_length=MAX_TEXT_FIELD)
    client_msg_id: str = Field(min_length=1, max_length=64)


class EditIn(Payload):
    message_id: RowId
    text: str = Field(max_length=MAX_TEXT_FIELD)


class DeleteIn(Payload):
    message_id: RowId


class ReadIn(Payload):
    room_id: RowId
    message_id: RowId


class TypingIn(Payload):
    room_id: RowId
    typing: bool


class Cursor(Payload):
    room_id: RowId
    last_id: int = Field(ge=0, le=2**63 - 1)


class SyncIn(Payload):
    rooms: list[Cursor] = Field(max_length=1000)


def register_chat_events(
    gateway: RealtimeGateway, chat: ChatService, metrics: Metrics | None = None
) -> None:
    ack_timer = metrics.chat_ack_seconds.observe if metrics is not None else None

    @gateway.on("chat:message", MessageIn, EventClass.CHAT, timer=ack_timer)
    async def message(sid: str, who: Principal, data: MessageIn) -> dict[str, Any]:
        sent = await chat.send(who.user_id, data.room_id, data.text, data.client_msg_id, sid=sid)
        return {"message": sent}

    @gateway.on("chat:edit", EditIn, EventClass.CHAT)
    async def edit(sid: str, who: Principal, data: EditIn) -> dict[str, Any]:
        return {"message": await chat.edit(who.user_id, data.message_id, data.text)}

    @gateway.on("chat:delete", DeleteIn, EventClass.CHAT)
    async def delete(sid: str, who: Principal, data: DeleteIn) -> dict[str, Any]:
        return await chat.delete(who.user_id, data.message_id)

    @gateway.on("chat:read", ReadIn, EventClass.READ)
    async def read(sid: str, who: Principal, data: ReadIn) -> dict[str, Any]:
        return await chat.mark_read(who.user_id, data.room_id, data.message_id)

    @gateway.on("chat:typing", TypingIn, EventClass.TYPING, quiet_when_limited=True)
    async def typing(sid: str, who: Principal, data: TypingIn) -> dict[str, Any]:
        await chat.typing(who.user_id, data.room_id, data.typing)
        return {}

    @gateway.on("chat:sync", SyncIn, EventClass.READ)
    async def sync(sid: str, who: Principal, data: SyncIn) -> dict[str, Any]:
        cursors = {c.room_id: c.last_id for c in data.rooms}
        return {"rooms": await chat.catch_up(who.user_id, cursors)}
