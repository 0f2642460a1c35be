"""`GET /healthz`: the state of each service of the appliance."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, Response, jsonify

from appliance.adapters import stun_probe
from appliance.transport.http.deps import container

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
async def healthz() -> Response:
    """Each service's state. 200 while the web service and its database work (`status` is "ok",
    or "degraded" when another service is down); 503 when the database does not answer."""
    services: dict[str, dict[str, Any]] = {"web": {"state": "up"}}
    core_ok = True
    try:
        async with container().db.conn.execute("SELECT 1") as cur:
            await cur.fetchone()
        services["database"] = {"state": "up"}
    except Exception as exc:  # any failure means the database is down
        services["database"] = {"state": "down", "detail": type(exc).__name__}
        core_ok = False
    turn = container().settings.config.turn
    host = next((ip for ip in turn.listen_ips), "127.0.0.1")
    turn_up, store_up = await asyncio.gather(
        stun_probe.alive(host, turn.port), container().media.healthy()
    )
    services["turn"] = {"state": "up" if turn_up else "down"}
    services["store"] = {"state": "up" if store_up else "down"}
    services["recorder"] = {"state": "up" if container().recordings.recorder_up else "down"}
    healthy = all(s["state"] == "up" for s in services.values())
    status = "ok" if healthy else "degraded" if core_ok else "down"
    response = jsonify({"status": status, "services": services})
    response.status_code = 200 if core_ok else 503
    return response
