"""What route handlers need from the running app: the container and the caller."""

from __future__ import annotations

from quart import current_app, request

from appliance.container import Container
from appliance.errors import AppError, ErrorCode
from appliance.services.auth import Principal

CONTAINER_KEY = "appliance.container"


def container() -> Container:
    found = current_app.extensions[CONTAINER_KEY]
    assert isinstance(found, Container)
    return found


def client_address() -> str:
    if container().settings.config.web.trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return request.remote_addr or "unknown"


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AppError(ErrorCode.TOKEN_MISSING, "send Authorization: Bearer <access token>")
    if scheme.lower() != "bearer" or not token.strip():
        raise AppError(ErrorCode.TOKEN_INVALID, "Authorization must be 'Bearer <token>'")
    return token.strip()


def user_agent() -> str:
    return request.headers.get("User-Agent", "")


async def current_principal(*, allow_password_change: bool = False) -> Principal:
    """The caller. While their password must be changed, only the routes that pass
    `allow_password_change` (me, own password, logout) let them through."""
    principal = await container().auth.authenticate(bearer_token())
    if principal.must_change_password and not allow_password_change:
        raise AppError(
            ErrorCode.PASSWORD_CHANGE_REQUIRED,
            "change your password first (POST /api/account/password)",
        )
    return principal


async def admin_principal() -> Principal:
    """The caller, who must be an enabled admin (`forbidden` otherwise)."""
    principal = await current_principal()
    if not principal.is_admin:
        raise AppError(ErrorCode.FORBIDDEN, "only admins may do that")
    return principal
