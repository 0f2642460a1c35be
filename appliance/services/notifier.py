"""How services speak to connected clients without knowing Socket.IO."""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    async def to_everyone(
        self, event: str, payload: dict[str, Any], *, except_user: int | None = None
    ) -> None: ...

    async def to_user(
        self, user_id: int, event: str, payload: dict[str, Any], *, except_sid: str | None = None
    ) -> None:
        """Every socket of the user (but `except_sid`)."""
        ...

    async def to_socket(self, sid: str, event: str, payload: dict[str, Any]) -> None: ...

    async def to_room(
        self,
        room_id: int,
        event: str,
        payload: dict[str, Any],
        *,
        except_sid: str | None = None,
        except_user: int | None = None,
    ) -> None:
        """Every socket of every member of a chat room."""
        ...

    async def join_room(self, user_id: int, room_id: int) -> None:
        """Make every open socket of the user receive the room's events."""
        ...

    async def leave_room(self, user_id: int, room_id: int) -> None: ...
