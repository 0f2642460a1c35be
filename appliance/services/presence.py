"""Presence: who is online, announced once per user, with a grace period against reload flaps.

A user may hold many sockets. `user_online` goes out when the first one connects; `user_offline`
when the last one has been gone for `grace` seconds. The socket bookkeeping sits behind
`PresenceStore` so a shared store can replace the in-process one for several workers.
"""

from __future__ import annotations

import asyncio
import bisect
from dataclasses import dataclass
from typing import Protocol

from appliance.services.clock import Clock
from appliance.services.notifier import Notifier
from appliance.storage.users import UserRepository

USER_ONLINE = "user_online"
USER_OFFLINE = "user_offline"


class PresenceStore(Protocol):
    async def add(self, user_id: int, sid: str) -> int:
        """Record a socket; return how many the user has now."""
        ...

    async def remove(self, user_id: int, sid: str) -> int:
        """Forget a socket; return how many the user has left."""
        ...

    async def count(self, user_id: int) -> int: ...

    async def users(self) -> set[int]: ...


class MemoryPresenceStore:
    def __init__(self) -> None:
        self._sockets: dict[int, set[str]] = {}

    async def add(self, user_id: int, sid: str) -> int:
        sockets = self._sockets.setdefault(user_id, set())
        sockets.add(sid)
        return len(sockets)

    async def remove(self, user_id: int, sid: str) -> int:
        sockets = self._sockets.get(user_id)
        if sockets is None:
            return 0
        sockets.discard(sid)
        if not sockets:
            del self._sockets[user_id]
            return 0
        return len(sockets)

    async def count(self, user_id: int) -> int:
        return len(self._sockets.get(user_id, ()))

    async def users(self) -> set[int]:
        return set(self._sockets)


@dataclass(frozen=True, slots=True)
class OnlineUser:
    user_id: int
    username: str


def _listing_order(user: OnlineUser) -> tuple[str, int]:
    return user.username.casefold(), user.user_id


class PresenceService:
    def __init__(
        self,
        store: PresenceStore,
        users: UserRepository,
        notifier: Notifier,
        clock: Clock,
        *,
        grace: float,
    ) -> None:
        self._store = store
        self._users = users
        self._notifier = notifier
        self._clock = clock
        self._grace = grace
        self._names: dict[int, str] = {}
        self._pending_offline: dict[int, asyncio.Task[None]] = {}
        #: Who others see as online, kept sorted as users come and go: every new socket gets
        #: this list, so it is not rebuilt and sorted once per connect (O(N log N) each).
        self._listed: list[OnlineUser] = []
        self._listing: list[dict[str, object]] | None = None  # `listing()`, until a change

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        """Cancel grace timers and record everyone still counted online as last seen now."""
        leaving = set(self._pending_offline) | await self._store.users()
        pending = list(self._pending_offline.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._pending_offline.clear()
        now = self._clock()
        for user_id in leaving:
            await self._users.set_last_seen(user_id, now)

    async def connected(self, user_id: int, username: str, sid: str) -> None:
        self._names[user_id] = username
        count = await self._store.add(user_id, sid)
        pending = self._pending_offline.pop(user_id, None)
        if pending is not None:
            pending.cancel()  # back within the grace period: others never saw them leave
            return
        if count == 1:
            self._list(OnlineUser(user_id, username))
            await self._notifier.to_everyone(
                USER_ONLINE, {"user_id": user_id, "username": username}, except_user=user_id
            )

    async def disconnected(self, user_id: int, sid: str) -> None:
        remaining = await self._store.remove(user_id, sid)
        if remaining > 0 or user_id in self._pending_offline:
            return
        if self._grace <= 0:
            await self._go_offline(user_id)
            return
        self._pending_offline[user_id] = asyncio.create_task(
            self._offline_after_grace(user_id), name=f"presence-grace-{user_id}"
        )

    async def _offline_after_grace(self, user_id: int) -> None:
        await asyncio.sleep(self._grace)
        if self._pending_offline.get(user_id) is asyncio.current_task():
            del self._pending_offline[user_id]
        await self._go_offline(user_id)

    async def _go_offline(self, user_id: int) -> None:
        if await self._store.count(user_id) > 0:
            return
        now = self._clock()
        await self._users.set_last_seen(user_id, now)
        username = self._names.pop(user_id, "")
        self._unlist(OnlineUser(user_id, username))
        await self._notifier.to_everyone(
            USER_OFFLINE,
            {"user_id": user_id, "username": username, "last_seen": now},
            except_user=user_id,
        )

    def _list(self, user: OnlineUser) -> None:
        at = bisect.bisect_left(self._listed, _listing_order(user), key=_listing_order)
        if at == len(self._listed) or self._listed[at] != user:
            self._listed.insert(at, user)
            self._listing = None

    def _unlist(self, user: OnlineUser) -> None:
        at = bisect.bisect_left(self._listed, _listing_order(user), key=_listing_order)
        if at < len(self._listed) and self._listed[at] == user:
            del self._listed[at]
            self._listing = None

    async def online(self) -> list[OnlineUser]:
        """Everyone others see as online now (including users inside their grace period),
        sorted by username."""
        return list(self._listed)

    async def listing(self) -> list[dict[str, object]]:
        """`online()` as the `users` of a `presence:list` payload. Shared until the next
        change (many sockets connecting at once get the same one): never modify it."""
        if self._listing is None:
            self._listing = [{"user_id": u.user_id, "username": u.username} for u in self._listed]
        return self._listing

    async def socket_count(self, user_id: int) -> int:
        return await self._store.count(user_id)

    async def counts(self) -> tuple[int, int]:
        """(users others see as online, their open sockets): for /metrics, at scrape time."""
        connected = await self._store.users()
        sockets = 0
        for user_id in connected:
            sockets += await self._store.count(user_id)
        return len(connected | set(self._pending_offline)), sockets

    async def is_online(self, user_id: int) -> bool:
        return user_id in self._pending_offline or await self._store.count(user_id) > 0
