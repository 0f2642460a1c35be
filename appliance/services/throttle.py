"""Login throttling: after a few free failures, each further one doubles the wait.

Counted per username and per client address. The counters live behind `AttemptStore`, whose
first implementation is in this process; a shared store (Redis) can replace it for many workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from appliance.config import AuthConfig
from appliance.errors import AppError, ErrorCode
from appliance.services.clock import Clock


@dataclass(slots=True)
class Attempts:
    failures: int
    last_failure: float


class AttemptStore(Protocol):
    async def get(self, key: str) -> Attempts | None: ...
    async def put(self, key: str, attempts: Attempts) -> None: ...
    async def clear(self, key: str) -> None: ...
    async def prune(self, older_than: float) -> None: ...


class MemoryAttemptStore:
    def __init__(self) -> None:
        self._items: dict[str, Attempts] = {}

    async def get(self, key: str) -> Attempts | None:
        return self._items.get(key)

    async def put(self, key: str, attempts: Attempts) -> None:
        self._items[key] = attempts

    async def clear(self, key: str) -> None:
        self._items.pop(key, None)

    async def prune(self, older_than: float) -> None:
        for key in [k for k, v in self._items.items() if v.last_failure < older_than]:
            del self._items[key]


class LoginThrottle:
    def __init__(self, config: AuthConfig, store: AttemptStore, clock: Clock) -> None:
        self._free = config.login_free_failures
        self._base = config.login_base_delay
        self._max = config.login_max_delay
        self._store = store
        self._clock = clock

    @staticmethod
    def keys(username: str, client: str) -> tuple[str, str]:
        return f"user:{username.casefold()}", f"addr:{client}"

    def _delay(self, failures: int) -> float:
        over = failures - self._free
        if over < 0:
            return 0.0
        return float(min(self._max, self._base * (2**over)))

    async def check(self, username: str, client: str) -> None:
        """Raise `rate_limited` if either key must still wait."""
        now = self._clock()
        wait = 0.0
        for key in self.keys(username, client):
            attempts = await self._store.get(key)
            if attempts is None:
                continue
            until = attempts.last_failure + self._delay(attempts.failures)
            wait = max(wait, until - now)
        if wait > 0:
            raise AppError(
                ErrorCode.RATE_LIMITED, "too many failed logins; try again later", retry_after=wait
            )

    async def failed(self, username: str, client: str) -> None:
        now = self._clock()
        await self._store.prune(now - 2 * self._max)
        for key in self.keys(username, client):
            attempts = await self._store.get(key)
            count = attempts.failures + 1 if attempts else 1
            await self._store.put(key, Attempts(count, now))

    async def succeeded(self, username: str) -> None:
        await self._store.clear(self.keys(username, "")[0])
