"""The user directory with presence."""

from __future__ import annotations

from pydantic import BaseModel
from quart import Blueprint
from quart_schema import validate_response

from appliance.transport.http.deps import container, current_principal

blueprint = Blueprint("users", __name__, url_prefix="/api")


class UserPresence(BaseModel):
    user_id: int
    username: str
    is_admin: bool
    online: bool
    last_seen: float | None


class UserList(BaseModel):
    users: list[UserPresence]


@blueprint.get("/users")
@validate_response(UserList, 200)
async def list_users() -> UserList:
    """Every user with whether they are online now and when they were last seen."""
    await current_principal()
    services = container()
    online = {u.user_id for u in await services.presence.online()}
    return UserList(
        users=[
            UserPresence(
                user_id=u.id,
                username=u.username,
                is_admin=u.is_admin,
                online=u.id in online,
                last_seen=u.last_seen,
            )
            for u in await services.users.list_all()
        ]
    )
