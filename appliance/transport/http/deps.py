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


async def current_principal() -> Principal:
    return await container().auth.authenticate(bearer_token())
