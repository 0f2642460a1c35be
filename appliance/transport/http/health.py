"""`GET /healthz`: the state of each service of the appliance."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify

from appliance.transport.http.deps import container

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Response:
    """200 when the web service and its database answer; each service's state in `services`."""
    services: dict[str, dict[str, Any]] = {"web": {"state": "up"}}
    try:
        async with container().db.conn.execute("SELECT 1") as cur:
            await cur.fetchone()
        services["database"] = {"state": "up"}
    except Exception as exc:  # any failure means the database is down
        services["database"] = {"state": "down", "detail": type(exc).__name__}
    healthy = all(s["state"] == "up" for s in services.values())
    response = jsonify({"status": "ok" if healthy else "degraded", "services": services})
    response.status_code = 200 if healthy else 503
    return response
