"""Login, token refresh, logout and the caller's own account."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import validate_request, validate_response

from appliance.services.auth import TokenPair
from appliance.transport.http.deps import (
    client_address,
    container,
    current_principal,
    user_agent,
)

blueprint = Blueprint("auth", __name__, url_prefix="/api")


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int
    must_change_password: bool = False


class UserOut(BaseModel):
    user_id: int
    username: str
    is_admin: bool
    must_change_password: bool


def token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        must_change_password=pair.must_change_password,
    )


@blueprint.post("/auth/login")
@validate_request(LoginRequest)
@validate_response(TokenResponse, 200)
async def login(data: LoginRequest) -> TokenResponse:
    """Exchange a username and password for an access and a refresh token."""
    pair = await container().auth.login(
        data.username, data.password, client_address(), user_agent()
    )
    return token_response(pair)


@blueprint.post("/auth/refresh")
@validate_request(RefreshRequest)
@validate_response(TokenResponse, 200)
async def refresh(data: RefreshRequest) -> TokenResponse:
    """Rotate a refresh token. Presenting a rotated one revokes the whole login."""
    return token_response(await container().auth.refresh(data.refresh_token))


@blueprint.post("/auth/logout")
async def logout() -> tuple[str, int]:
    """Revoke the caller's login: its refresh tokens, access tokens and open sockets."""
    principal = await current_principal(allow_password_change=True)
    await container().auth.logout(principal)
    return "", 204


@blueprint.get("/me")
@validate_response(UserOut, 200)
async def me() -> UserOut:
    """The account behind the access token."""
    principal = await current_principal(allow_password_change=True)
    return UserOut(
        user_id=principal.user_id,
        username=principal.username,
        is_admin=principal.is_admin,
        must_change_password=principal.must_change_password,
    )
