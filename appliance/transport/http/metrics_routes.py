"""`GET /metrics`: Prometheus text format, for the allowed addresses or the metrics token."""

from __future__ import annotations

import logging

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from quart import Blueprint, Response, request

from appliance.errors import AppError, ErrorCode
from appliance.observability.scrape import scrape
from appliance.transport.http.deps import client_address, container

log = logging.getLogger(__name__)

blueprint = Blueprint("metrics", __name__)

LOGIN_PATH = "/api/auth/login"


def login_outcome(status: int) -> str:
    if status == 200:
        return "ok"
    if status == 429:
        return "throttled"
    if status in (400, 413, 415):
        return "invalid"
    return "failed"


@blueprint.get("/metrics")
async def metrics() -> Response:
    """Metrics in the Prometheus text format (docs/observability.md). Allowed from
    `metrics.allow_from` or with `Authorization: Bearer <metrics.token>`; else 403 `forbidden`;
    404 when `metrics.enabled` is false."""
    services = container()
    access = services.metrics_access
    if not access.enabled:
        raise AppError(ErrorCode.NOT_FOUND, "metrics are switched off")
    if not access.allowed(client_address(), request.headers.get("Authorization", "")):
        raise AppError(ErrorCode.FORBIDDEN, "metrics are not available to this client")
    body = await scrape(services)
    # The classic text format (0.0.4): every Prometheus version reads it; the names here
    # need none of format 1.0.0's UTF-8 escaping.
    response = Response(body, status=200, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.after_app_request
async def _count_logins(response: Response) -> Response:
    """Logins by outcome, counted (and logged: one line, the outcome and the client address,
    never the name typed, which is sometimes a password) from the login route's answer."""
    if request.path == LOGIN_PATH and request.method == "POST":
        outcome = login_outcome(response.status_code)
        container().metrics.login(outcome)
        level = logging.INFO if outcome == "ok" else logging.WARNING
        log.log(level, "login %s", outcome, extra={"client": client_address()})
    return response
