"""Chat rooms over HTTP: create, open direct, members, my rooms, history."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import validate_querystring, validate_request

from appliance.transport.http.deps import container, current_principal

blueprint = Blueprint("rooms", __name__, url_prefix="/api/rooms")


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=80)
    member_ids: list[int] = Field(default_factory=list, max_length=1000)


class DirectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1)


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int = Field(ge=1)


class HistoryQuery(BaseModel):
    before: int | None = Field(default=None, ge=1)
    limit: int = Field(default=50, ge=1, le=1000)


@blueprint.get("")
async def my_rooms() -> dict[str, Any]:
    """My rooms, most recently active first, each with its last message and my unread count."""
    me = await current_principal()
    return {"rooms": await container().chat.list_rooms(me.user_id)}


@blueprint.post("")
@validate_request(GroupIn)
async def create_group(data: GroupIn) -> tuple[dict[str, Any], int]:
    """Create a group room; the creator is its admin."""
    me = await current_principal()
    view = await container().chat.create_group(me.user_id, data.name, data.member_ids)
    return {"room": view.payload()}, 201


@blueprint.post("/direct")
@validate_request(DirectIn)
async def open_direct(data: DirectIn) -> dict[str, Any]:
    """The direct room with another user, created on first use (one per pair)."""
    me = await current_principal()
    return {"room": (await container().chat.open_direct(me.user_id, data.user_id)).payload()}


@blueprint.get("/<int:room_id>")
async def room(room_id: int) -> dict[str, Any]:
    """A room I belong to, with its members."""
    me = await current_principal()
    return {"room": (await container().chat.room(me.user_id, room_id)).payload()}


@blueprint.post("/<int:room_id>/members")
@validate_request(MemberIn)
async def add_member(room_id: int, data: MemberIn) -> dict[str, Any]:
    """Add a member to a group room (room admins only)."""
    me = await current_principal()
    view = await container().chat.add_member(me.user_id, room_id, data.user_id)
    return {"room": view.payload()}


@blueprint.delete("/<int:room_id>/members/<int:user_id>")
async def remove_member(room_id: int, user_id: int) -> tuple[str, int]:
    """Remove a member (room admins), or leave (your own id)."""
    me = await current_principal()
    await container().chat.remove_member(me.user_id, room_id, user_id)
    return "", 204


@blueprint.get("/<int:room_id>/messages")
@validate_querystring(HistoryQuery)
async def history(room_id: int, query_args: HistoryQuery) -> dict[str, Any]:
    """Messages newest first; pass the smallest id you have as `before` for the next page."""
    me = await current_principal()
    messages, next_before = await container().chat.history(
        me.user_id, room_id, query_args.before, query_args.limit
    )
    return {"messages": messages, "next_before": next_before}
