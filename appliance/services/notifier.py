"""How services speak to connected clients without knowing Socket.IO."""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    async def to_everyone(
        self, event: str, payload: dict[str, Any], *, except_user: int | None = None
    ) -> None: ...

    async def to_user(self, user_id: int, event: str, payload: dict[str, Any]) -> None: ...
