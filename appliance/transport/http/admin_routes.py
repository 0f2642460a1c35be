"""The admin API: accounts and invitation links (admins only; `forbidden` for anyone else)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, request
from quart_schema import validate_request, validate_response

from appliance.services.accounts import AccountView
from appliance.storage.invitations import InvitationRecord
from appliance.transport.http.deps import admin_principal, container

blueprint = Blueprint("admin", __name__, url_prefix="/api/admin")

MIN_EXPIRY = 300
MAX_EXPIRY = 90 * 86_400


class AdminUserOut(BaseModel):
    user_id: int
    username: str
    is_admin: bool
    disabled: bool
    must_change_password: bool
    online: bool
    last_seen: float | None
    created_at: float


class AdminUserList(BaseModel):
    users: list[AdminUserOut]


class AdminUserWrap(BaseModel):
    user: AdminUserOut


class CreateUserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    is_admin: bool = False
    must_change_password: bool = True


class UpdateUserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    disabled: bool | None = None
    is_admin: bool | None = None


class ResetPasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    password: str = Field(min_length=1, max_length=1024)


class PersonOut(BaseModel):
    user_id: int
    username: str


class InvitationOut(BaseModel):
    id: int
    max_uses: int
    uses: int
    expires_at: float
    is_admin: bool
    note: str
    created_at: float
    created_by: PersonOut | None
    state: str


class NewInvitationOut(InvitationOut):
    token: str
    url: str


class NewInvitationWrap(BaseModel):
    invitation: NewInvitationOut


class InvitationList(BaseModel):
    invitations: list[InvitationOut]


class CreateInvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max_uses: int = Field(default=1, ge=1, le=1000)
    expires_in: int = Field(default=7 * 86_400, ge=MIN_EXPIRY, le=MAX_EXPIRY)
    is_admin: bool = False
    note: str = Field(default="", max_length=200)


def user_out(view: AccountView) -> AdminUserOut:
    user = view.user
    return AdminUserOut(
        user_id=user.id,
        username=user.username,
        is_admin=user.is_admin,
        disabled=user.disabled,
        must_change_password=user.must_change_password,
        online=view.online,
        last_seen=user.last_seen,
        created_at=user.created_at,
    )


def invitation_fields(record: InvitationRecord, now: float) -> dict[str, object]:
    creator = (
        PersonOut(user_id=record.created_by, username=record.creator_name or "")
        if record.created_by is not None
        else None
    )
    return {
        "id": record.id,
        "max_uses": record.max_uses,
        "uses": record.uses,
        "expires_at": record.expires_at,
        "is_admin": record.is_admin,
        "note": record.note,
        "created_at": record.created_at,
        "created_by": creator,
        "state": record.state(now),
    }


def _origin() -> str:
    return f"{request.scheme}://{request.host}"


# -- users ------------------------------------------------------------------------------------


@blueprint.get("/users")
@validate_response(AdminUserList, 200)
async def list_users() -> AdminUserList:
    """Every account but deleted ones, with online, last seen, admin and disabled."""
    await admin_principal()
    return AdminUserList(users=[user_out(v) for v in await container().accounts.list_users()])


@blueprint.post("/users")
@validate_request(CreateUserIn)
@validate_response(AdminUserWrap, 201)
async def create_user(data: CreateUserIn) -> tuple[AdminUserWrap, int]:
    """Create an account; by default its password must be changed at first login."""
    await admin_principal()
    view = await container().accounts.create(
        data.username,
        data.password,
        is_admin=data.is_admin,
        must_change_password=data.must_change_password,
    )
    return AdminUserWrap(user=user_out(view)), 201


@blueprint.patch("/users/<int:user_id>")
@validate_request(UpdateUserIn)
@validate_response(AdminUserWrap, 200)
async def update_user(user_id: int, data: UpdateUserIn) -> AdminUserWrap:
    """Disable or enable, make or remove admin. Disabling ends the account's logins and open
    sockets at once; the last enabled admin stays (`last_admin`)."""
    actor = await admin_principal()
    view = await container().accounts.update(
        actor, user_id, disabled=data.disabled, is_admin=data.is_admin
    )
    return AdminUserWrap(user=user_out(view))


@blueprint.post("/users/<int:user_id>/password")
@validate_request(ResetPasswordIn)
async def reset_password(user_id: int, data: ResetPasswordIn) -> tuple[str, int]:
    """Set a new password the user must change at next login; all their logins end."""
    actor = await admin_principal()
    await container().accounts.reset_password(actor, user_id, data.password)
    return "", 204


@blueprint.delete("/users/<int:user_id>")
async def delete_user(user_id: int) -> tuple[str, int]:
    """Delete an account; its messages stay, shown as from "Deleted account"."""
    actor = await admin_principal()
    await container().accounts.delete(actor, user_id)
    return "", 204


# -- invitations ------------------------------------------------------------------------------


@blueprint.post("/invitations")
@validate_request(CreateInvitationIn)
@validate_response(NewInvitationWrap, 201)
async def create_invitation(data: CreateInvitationIn) -> tuple[NewInvitationWrap, int]:
    """A new invitation link. Its token is returned only here, once."""
    actor = await admin_principal()
    invitations = container().invitations
    made = await invitations.create(
        actor.user_id,
        max_uses=data.max_uses,
        expires_in=data.expires_in,
        is_admin=data.is_admin,
        note=data.note,
    )
    out = NewInvitationOut.model_validate(
        {
            **invitation_fields(made.record, invitations.now()),
            "token": made.token,
            "url": f"{_origin()}/#invite={made.token}",
        }
    )
    return NewInvitationWrap(invitation=out), 201


@blueprint.get("/invitations")
@validate_response(InvitationList, 200)
async def list_invitations() -> InvitationList:
    """Every invitation link, newest first, with its state (tokens are never shown again)."""
    await admin_principal()
    invitations = container().invitations
    now = invitations.now()
    return InvitationList(
        invitations=[
            InvitationOut.model_validate(invitation_fields(r, now))
            for r in await invitations.list_all()
        ]
    )


@blueprint.delete("/invitations/<int:invitation_id>")
async def revoke_invitation(invitation_id: int) -> tuple[str, int]:
    """Revoke a link (again is fine)."""
    await admin_principal()
    await container().invitations.revoke(invitation_id)
    return "", 204
