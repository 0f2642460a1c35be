"""`GET /api/admin/doctor`: the doctor's report (appliance/doctor), for admins only."""

from __future__ import annotations

import asyncio
from typing import Any

from quart import Blueprint, current_app

from appliance.doctor.model import DoctorContext, Report
from appliance.errors import AppError, ErrorCode
from appliance.transport.http.deps import container, current_principal

blueprint = Blueprint("doctor", __name__, url_prefix="/api/admin")
RUNNING_KEY = "appliance.doctor.running"


async def _report() -> Report:
    """One run at a time: a request that comes while one runs gets that run's report."""
    running: asyncio.Task[Report] | None = current_app.extensions.get(RUNNING_KEY)
    if running is None or running.done():
        # The checks (aioice, dnspython, ...) are loaded by the first run, not held by the idle
        # web process (docs/benchmarks.md, "Whole stack at rest").
        from appliance.doctor.runner import run_doctor

        services = container()
        config = services.settings.config
        context = DoctorContext(
            services.settings,
            web_url=config.recording.web_url or f"http://127.0.0.1:{config.web.port}",
            recorder_up=lambda: services.recordings.recorder_up,
            in_web=True,
        )
        running = asyncio.ensure_future(run_doctor(context))
        current_app.extensions[RUNNING_KEY] = running
    return await asyncio.shield(running)


@blueprint.get("/doctor")
async def doctor() -> dict[str, Any]:
    """Every health check with its verdict (`ok|warn|fail|skip`), a summary and a fix."""
    principal = await current_principal()
    if not principal.is_admin:
        raise AppError(ErrorCode.FORBIDDEN, "only administrators may run the doctor")
    return (await _report()).as_dict()
