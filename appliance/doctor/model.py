"""What a check returns, and what every check may read."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.config import Settings


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report. `fix` is plain-language advice; empty when there is nothing to do."""

    name: str
    status: Status
    summary: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "fix": self.fix if self.status in (Status.WARN, Status.FAIL) else "",
        }


def ok(name: str, summary: str) -> Check:
    return Check(name, Status.OK, summary)


def warn(name: str, summary: str, fix: str) -> Check:
    return Check(name, Status.WARN, summary, fix)


def fail(name: str, summary: str, fix: str) -> Check:
    return Check(name, Status.FAIL, summary, fix)


def skip(name: str, summary: str) -> Check:
    return Check(name, Status.SKIP, summary)


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings and skips do not count)."""
        return all(c.status is not Status.FAIL for c in self.checks)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_dict() for c in self.checks]}

    def by_name(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


@dataclass(slots=True)
class DoctorContext:
    """What the checks may read.

    `web_url`: how the CLI reaches the web service (for the recorder's state).
    `recorder_up`: inside the web service, its own view of the recorder's socket (then no HTTP).
    `in_web`: the doctor runs inside the web service (the endpoint): its own file-descriptor
    limit is the web service's."""

    settings: Settings
    web_url: str
    recorder_up: Callable[[], bool] | None = None
    in_web: bool = False
    _shared: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """The result of `make()` (a coroutine), computed once per run for every check."""
        task = self._shared.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._shared[key] = task
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel shared work nobody waits for any more (a check that timed out)."""
        for task in self._shared.values():
            task.cancel()
        await asyncio.gather(*self._shared.values(), return_exceptions=True)
        self._shared.clear()
