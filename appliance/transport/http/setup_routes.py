"""The first-run set-up wizard's HTTP API (docs/setup.md), and `GET /api/site`.

Every `/api/setup/...` request must carry `Authorization: Setup <token>`; it is checked before
anything else, so once set-up is done every wizard endpoint answers 404 whatever is sent.
"""

from __future__ import annotations

from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import RequestSchemaValidationError, validate_request, validate_response

from appliance.errors import AppError, ErrorCode
from appliance.services.setup import (
    STEPS,
    Environment,
    FinishResult,
    SetupDraft,
    SetupPlan,
    SiteInfo,
    StepReport,
    StunReport,
)
from appliance.transport.http.deps import client_address, container
from appliance.transport.http.errors import error_response

SCHEME = "setup"

site_blueprint = Blueprint("site", __name__, url_prefix="/api")
blueprint = Blueprint("setup", __name__, url_prefix="/api/setup")


@site_blueprint.get("/site")
@validate_response(SiteInfo, 200)
async def site() -> SiteInfo:
    """No auth. The organisation's name and whether the set-up wizard still has to run."""
    return container().setup.site()


def _presented_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != SCHEME or not token.strip():
        return None
    return token.strip()


@blueprint.before_request
async def _authorize() -> None:
    await container().setup.authorize(_presented_token(), client_address())


@blueprint.errorhandler(RequestSchemaValidationError)
async def _schema_error(exc: RequestSchemaValidationError) -> Response:
    """As everywhere, plus `fields`: each bad field's dotted path and what is wrong with it."""
    fields: dict[str, str] = {}
    inner = exc.validation_error
    if isinstance(inner, ValidationError):
        for err in inner.errors():
            where = ".".join(str(p) for p in err["loc"]) or "body"
            fields.setdefault(where, err["msg"])
    message = next((f"{k}: {v}" for k, v in fields.items()), "malformed request body")
    return error_response(AppError(ErrorCode.INVALID_REQUEST, message, fields=fields or None))


@blueprint.post("/token")
@validate_response(SiteInfo, 200)
async def check_token() -> SiteInfo:
    """Setup token. 200 when the token is right (401 wrong or missing, 429 throttled, 404 once
    set-up is done)."""
    return container().setup.site()


@blueprint.get("/environment")
@validate_response(Environment, 200)
async def environment() -> Environment:
    """Setup token. What the box detected about itself, and the current config to pre-fill
    each step with."""
    return container().setup.environment()


@blueprint.get("/stun")
@validate_response(StunReport, 200)
async def stun() -> StunReport:
    """Setup token. How a STUN server sees the box (when `turn.stun_servers` is set) and a
    plain-language verdict on whether calls between networks will need the TURN relay."""
    return await container().setup.stun_report()


@blueprint.post("/validate/<step>")
@validate_request(SetupDraft)
@validate_response(StepReport, 200)
async def validate(step: str, data: SetupDraft) -> StepReport:
    """Setup token. Check one step (`organisation`, `admin`, `reach`, `tls`, `turn`, `storage`
    or `recording`) in the context of the others sent. 400 `invalid_request` with `fields`."""
    if step not in STEPS:
        raise AppError(ErrorCode.NOT_FOUND, f"no set-up step {step!r}")
    return await container().setup.validate_step(step, data)


@blueprint.post("/finish")
@validate_request(SetupPlan)
@validate_response(FinishResult, 200)
async def finish(data: SetupPlan) -> FinishResult:
    """Setup token. Check every step again, create the admin, write the config, end set-up.
    Of two finishes at once, one wins; the other gets 404 (set-up is done)."""
    return await container().setup.finish(data)
