"""Call history and TURN credentials."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from quart import Blueprint, request
from quart_schema import validate_querystring

from appliance.transport.http.deps import container, current_principal

blueprint = Blueprint("calls", __name__, url_prefix="/api")


class HistoryQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)


@blueprint.get("/calls")
@validate_querystring(HistoryQuery)
async def call_history(query_args: HistoryQuery) -> dict[str, Any]:
    """My calls, newest first: direction, peer, media, when it rang, was answered and ended."""
    me = await current_principal()
    return {"calls": await container().calls.history(me.user_id, query_args.limit)}


@blueprint.get("/turn")
async def turn_credentials() -> dict[str, Any]:
    """ICE servers for RTCPeerConnection: STUN, and TURN with credentials valid for `ttl` s."""
    me = await current_principal()
    host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    return container().turn.ice_servers(me.user_id, host.strip("[]"))
