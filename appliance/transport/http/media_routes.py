"""Media sharing over HTTP: upload requests and downloads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, request
from quart_schema import validate_request

from appliance.transport.http.deps import container, current_principal

blueprint = Blueprint("media", __name__, url_prefix="/api/media")


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    room_id: int = Field(ge=1)
    filename: str = Field(min_length=1, max_length=1024)
    content_type: str = Field(min_length=3, max_length=255)
    size: int = Field(ge=0)


def origin() -> str:
    return f"{request.scheme}://{request.host}"


@blueprint.post("/uploads")
@validate_request(UploadIn)
async def request_upload(data: UploadIn) -> tuple[dict[str, Any], int]:
    """A pre-signed PUT for one file into a room you belong to. Send exactly the returned
    headers (browsers set Content-Length themselves), then `media:uploaded` over Socket.IO."""
    me = await current_principal()
    answer = await container().media.request_upload(
        me.user_id, data.room_id, data.filename, data.content_type, data.size, origin()
    )
    return answer, 201


@blueprint.get("/<media_id>")
async def download(media_id: str) -> Response | dict[str, Any]:
    """302 to a short pre-signed GET of the file (JSON `{url}` with `Accept: application/json`)."""
    me = await current_principal()
    if len(media_id) > 64:
        media_id = ""
    url = await container().media.download_url(me.user_id, media_id, origin())
    if request.accept_mimetypes.best == "application/json":
        return {"url": url, "expires_in": container().settings.config.storage.download_url_ttl}
    return Response("", status=302, headers={"Location": url, "Cache-Control": "no-store"})
