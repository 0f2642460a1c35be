"""Accounts as an admin manages them (list, create, disable, admin role, password reset,
delete) and as their owner does (password change, sessions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from appliance.errors import AppError, ErrorCode
from appliance.services.auth import AuthService, Principal
from appliance.services.chat import ChatService
from appliance.services.clock import Clock
from appliance.services.passwords import PasswordService
from appliance.services.presence import PresenceService
from appliance.services.throttle import LoginThrottle
from appliance.storage.tokens import LoginRecord, TokenRepository
from appliance.storage.users import LastAdmin, UserNotFound, UserRecord, UserRepository

log = logging.getLogger(__name__)

DISABLED_MESSAGE = "your account has been disabled by an administrator"
DELETED_MESSAGE = "your account has been deleted by an administrator"


@dataclass(frozen=True, slots=True)
class AccountView:
    user: UserRecord
    online: bool


@dataclass(frozen=True, slots=True)
class SessionView:
    login: LoginRecord
    current: bool


def _last_admin() -> AppError:
    return AppError(ErrorCode.LAST_ADMIN, "there must always be at least one enabled admin")


class AccountService:
    def __init__(
        self,
        users: UserRepository,
        tokens: TokenRepository,
        auth: AuthService,
        passwords: PasswordService,
        throttle: LoginThrottle,
        presence: PresenceService,
        chat: ChatService,
        clock: Clock,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._auth = auth
        self._passwords = passwords
        self._throttle = throttle
        self._presence = presence
        self._chat = chat
        self._clock = clock

    # -- admin ----------------------------------------------------------------------------

    async def _online_ids(self) -> set[int]:
        return {u.user_id for u in await self._presence.online()}

    async def view(self, user: UserRecord) -> AccountView:
        return AccountView(user, user.id in await self._online_ids())

    async def list_users(self) -> list[AccountView]:
        online = await self._online_ids()
        return [AccountView(u, u.id in online) for u in await self._users.list_all()]

    async def _target(self, user_id: int) -> UserRecord:
        user = await self._users.by_id(user_id)
        if user is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such user")
        return user

    async def create(
        self, username: str, password: str, *, is_admin: bool, must_change_password: bool
    ) -> AccountView:
        user = await self._auth.create_user(
            username, password, is_admin=is_admin, must_change_password=must_change_password
        )
        log.info("user %s created by an admin", user.id)
        return await self.view(user)

    async def _refuse_self(self, actor: Principal, what: str) -> None:
        """An admin may not disable, demote or delete themselves; when they are the last
        enabled admin, say that instead."""
        if await self._users.enabled_admin_count() <= 1:
            raise _last_admin()
        raise AppError(ErrorCode.CONFLICT, f"you cannot {what} your own account")

    async def update(
        self, actor: Principal, user_id: int, *, disabled: bool | None, is_admin: bool | None
    ) -> AccountView:
        user = await self._target(user_id)
        if user_id == actor.user_id:
            if disabled:
                await self._refuse_self(actor, "disable")
            if is_admin is False:
                await self._refuse_self(actor, "remove admin from")
        try:
            if is_admin is not None and is_admin != user.is_admin:
                user = await self._users.set_admin(user_id, is_admin)
                log.info("user %s admin=%s, by user %s", user_id, is_admin, actor.user_id)
            if disabled is not None and disabled != user.disabled:
                user = await self._users.set_disabled(user_id, disabled)
                log.info("user %s disabled=%s, by user %s", user_id, disabled, actor.user_id)
                if disabled:
                    await self._auth.close_user(
                        user_id, ErrorCode.ACCOUNT_DISABLED, DISABLED_MESSAGE
                    )
        except UserNotFound:
            raise AppError(ErrorCode.NOT_FOUND, "no such user") from None
        except LastAdmin:
            raise _last_admin() from None
        return await self.view(user)

    async def reset_password(self, actor: Principal, user_id: int, password: str) -> None:
        """A new password the user must change at their next login; all their logins end."""
        user = await self._target(user_id)
        await self._auth.set_password(user, password, must_change=True)
        log.info("password of user %s reset by user %s", user_id, actor.user_id)

    async def delete(self, actor: Principal, user_id: int) -> None:
        """Soft delete: messages stay (shown from "Deleted account"), the name is free, group
        rooms are left, every login and socket ends."""
        await self._target(user_id)
        if user_id == actor.user_id:
            await self._refuse_self(actor, "delete")
        try:
            await self._users.soft_delete(user_id, self._clock())
        except UserNotFound:
            raise AppError(ErrorCode.NOT_FOUND, "no such user") from None
        except LastAdmin:
            raise _last_admin() from None
        await self._auth.close_user(user_id, ErrorCode.ACCOUNT_DELETED, DELETED_MESSAGE)
        for room_id in await self._chat.room_ids_of(user_id):
            try:
                await self._chat.remove_member(user_id, room_id, user_id)
            except AppError:
                continue  # a direct room: the account stays in it, shown as deleted
        log.info("user %s deleted by user %s", user_id, actor.user_id)

    # -- own account ----------------------------------------------------------------------

    async def change_password(
        self, principal: Principal, current: str, new: str, client: str
    ) -> None:
        """Throttled like a login. Ends every other login of the user; keeps this one."""
        await self._throttle.check(principal.username, client)
        user = await self._target(principal.user_id)
        if not await self._passwords.verify(user.password_hash, current):
            await self._throttle.failed(principal.username, client)
            raise AppError(ErrorCode.INVALID_CREDENTIALS, "the current password is wrong")
        await self._throttle.succeeded(principal.username)
        self._auth.validate_new_password(new, user.username)
        password_hash = await self._passwords.hash(new)
        await self._users.update_password(user.id, password_hash, must_change_password=False)
        await self._auth.revoke_user_logins(user.id, except_family=principal.token.family)
        log.info("user %s changed their password", user.id)

    async def sessions(self, principal: Principal) -> list[SessionView]:
        logins = await self._tokens.active_logins(principal.user_id, self._clock())
        return [SessionView(x, x.family_id == principal.token.family) for x in logins]

    async def end_session(self, principal: Principal, login_id: int) -> None:
        login = await self._tokens.active_login(login_id, principal.user_id, self._clock())
        if login is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such session")
        await self._auth.revoke_login(login.family_id)
