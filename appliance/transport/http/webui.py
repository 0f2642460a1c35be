"""Serves the built web UI (webui/dist) at `/`."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_from_directory
from werkzeug.exceptions import NotFound


def make_blueprint(root: Path) -> Blueprint:
    blueprint = Blueprint("webui", __name__)

    @blueprint.get("/")
    async def index() -> Response:
        if not (root / "index.html").is_file():
            return Response(
                "The web UI is not built yet: run ./scripts/run (or `npm run build` in webui/).",
                status=503,
                content_type="text/plain",
            )
        response = await send_from_directory(root, "index.html")
        response.headers["Cache-Control"] = "no-cache"
        return response

    @blueprint.get("/assets/<path:name>")
    async def assets(name: str) -> Response:
        try:
            response = await send_from_directory(root / "assets", name)
        except NotFound:
            raise
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response

    return blueprint
