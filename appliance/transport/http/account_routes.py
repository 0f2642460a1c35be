"""The caller's own account: password change and sessions (one per login)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint
from quart_schema import validate_request, validate_response

from appliance.transport.http.deps import client_address, container, current_principal

blueprint = Blueprint("account", __name__, url_prefix="/api/account")


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    id: int
    created_at: float
    last_used_at: float
    client_address: str
    user_agent: str
    current: bool


class SessionList(BaseModel):
    sessions: list[SessionOut]


@blueprint.post("/password")
@validate_request(PasswordChangeIn)
async def change_password(data: PasswordChangeIn) -> tuple[str, int]:
    """Change your password (the current one is required; failures are throttled like
    logins). Every other login of yours ends; this one stays."""
    me = await current_principal(allow_password_change=True)
    await container().accounts.change_password(
        me, data.current_password, data.new_password, client_address()
    )
    return "", 204


@blueprint.get("/sessions")
@validate_response(SessionList, 200)
async def sessions() -> SessionList:
    """Your logins that can still be used, newest first; `current` marks this one."""
    me = await current_principal()
    return SessionList(
        sessions=[
            SessionOut(
                id=s.login.id,
                created_at=s.login.created_at,
                last_used_at=s.login.last_used_at,
                client_address=s.login.client_address,
                user_agent=s.login.user_agent,
                current=s.current,
            )
            for s in await container().accounts.sessions(me)
        ]
    )


@blueprint.delete("/sessions/<int:session_id>")
async def end_session(session_id: int) -> tuple[str, int]:
    """End one of your logins: its tokens stop working and its sockets close."""
    me = await current_principal()
    await container().accounts.end_session(me, session_id)
    return "", 204
