"""Invitation links, as the invited person uses them (no bearer token)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import validate_request, validate_response

from appliance.transport.http.auth_routes import TokenResponse, token_response
from appliance.transport.http.deps import client_address, container, user_agent

blueprint = Blueprint("invitations", __name__, url_prefix="/api/invitations")


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token: str = Field(min_length=1, max_length=256)


class CheckOut(BaseModel):
    organisation: str
    is_admin: bool
    expires_at: float
    password_min_length: int


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token: str = Field(min_length=1, max_length=256)
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@blueprint.post("/check")
@validate_request(CheckIn)
@validate_response(CheckOut, 200)
async def check(data: CheckIn) -> CheckOut:
    """Whether a link can be used, and what it gives. Failed checks count against the
    client address's hourly limit."""
    services = container()
    record = await services.invitations.check(data.token, client_address())
    return CheckOut(
        organisation=services.setup.site().name,
        is_admin=record.is_admin,
        expires_at=record.expires_at,
        password_min_length=services.settings.config.auth.password_min_length,
    )


@blueprint.post("/accept")
@validate_request(AcceptIn)
@validate_response(TokenResponse, 201)
async def accept(data: AcceptIn) -> tuple[TokenResponse, int]:
    """Create an account through a link and sign it in."""
    pair = await container().invitations.accept(
        data.token, data.username, data.password, client_address(), user_agent()
    )
    return token_response(pair), 201
