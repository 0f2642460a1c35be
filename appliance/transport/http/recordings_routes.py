"""Call recordings over HTTP: the caller's list, pre-signed downloads, deletion."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from appliance.transport.http.deps import container, current_principal
from appliance.transport.http.media_routes import origin

blueprint = Blueprint("recordings", __name__, url_prefix="/api/recordings")


@blueprint.get("")
async def list_recordings() -> dict[str, Any]:
    """Recordings of calls I took part in (processing or ready), newest first."""
    me = await current_principal()
    return {"recordings": await container().recordings.list_of(me.user_id)}


@blueprint.get("/<recording_id>")
async def download(recording_id: str) -> Response | dict[str, Any]:
    """302 to a short pre-signed GET of the file (JSON `{url}` with `Accept: application/json`).
    Participants only (`not_found` for others); `conflict` while it is not ready."""
    me = await current_principal()
    url = await container().recordings.download_url(me.user_id, recording_id, origin())
    if request.accept_mimetypes.best == "application/json":
        return {"url": url, "expires_in": container().settings.config.storage.download_url_ttl}
    return Response("", status=302, headers={"Location": url, "Cache-Control": "no-store"})


@blueprint.delete("/<recording_id>")
async def delete(recording_id: str) -> tuple[str, int]:
    """Delete a recording (file and record) for both participants."""
    me = await current_principal()
    await container().recordings.delete(me.user_id, recording_id)
    return "", 204
