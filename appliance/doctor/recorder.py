"""The recorder: connected to the web service (as web's /healthz reports), when recording is on."""

from __future__ import annotations

import aiohttp

from appliance.doctor.model import Check, DoctorContext, fail, ok, skip

NAME = "recorder"
DOWN_FIX = (
    "Start the recorder service (systemctl start appliance-recorder, or appliance up) and look "
    "at its log: it needs to reach the web service (recording.web_url)."
)


async def check_recorder(context: DoctorContext) -> list[Check]:
    if not context.settings.config.recording.enabled:
        return [skip(NAME, "recording is off (recording.enabled = false)")]
    if context.recorder_up is not None:
        up = context.recorder_up()
    else:
        url = f"{context.web_url.rstrip('/')}/healthz"
        timeout = aiohttp.ClientTimeout(total=context.settings.config.doctor.check_timeout / 2)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(url) as response,
            ):
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return [
                fail(
                    NAME,
                    f"cannot ask the web service at {context.web_url} ({type(exc).__name__})",
                    "Start the web service; if it listens elsewhere, pass --web-url or set "
                    "recording.web_url.",
                )
            ]
        services = body.get("services", {}) if isinstance(body, dict) else {}
        up = isinstance(services, dict) and services.get("recorder", {}).get("state") == "up"
    if up:
        return [ok(NAME, "the recorder is connected to the web service")]
    return [fail(NAME, "recording is on but the recorder is not connected", DOWN_FIX)]
