"""Run every check at once, each under `[doctor] check_timeout`, in a fixed order of lines."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from appliance.doctor.certificate import check_certificate
from appliance.doctor.clock import check_clock
from appliance.doctor.database import NAMES as DATABASE_NAMES
from appliance.doctor.database import check_database
from appliance.doctor.model import Check, DoctorContext, Report, fail
from appliance.doctor.recorder import check_recorder
from appliance.doctor.services import check_services
from appliance.doctor.store import check_store
from appliance.doctor.system import check_disk, check_fd_limit
from appliance.doctor.turn import check_stun, check_turn

CheckFn = Callable[[DoctorContext], Awaitable[list[Check]]]


@dataclass(frozen=True, slots=True)
class Group:
    names: tuple[str, ...]  # the lines it writes (each gets a `fail` on a timeout or a crash)
    run: CheckFn


GROUPS: tuple[Group, ...] = (
    Group(DATABASE_NAMES, check_database),
    Group(("store",), check_store),
    Group(("turn",), check_turn),
    Group(("stun",), check_stun),
    Group(("certificate",), check_certificate),
    Group(("disk",), check_disk),
    Group(("fd_limit",), check_fd_limit),
    Group(("clock",), check_clock),
    Group(("services",), check_services),
    Group(("recorder",), check_recorder),
)


async def _guarded(group: Group, context: DoctorContext, limit: float) -> list[Check]:
    try:
        async with asyncio.timeout(limit):
            return await group.run(context)
    except TimeoutError:
        summary = f"no verdict within {limit:g} s"
        fix = "The service it checks hangs: look at its log, then restart it."
    except Exception as exc:  # a check must never take the whole report down
        summary = f"the check itself failed ({type(exc).__name__})"
        fix = "Run the doctor again with --log-level debug and report the error."
    return [fail(name, summary, fix) for name in group.names]


async def run_doctor(context: DoctorContext, groups: tuple[Group, ...] = GROUPS) -> Report:
    timeout = context.settings.config.doctor.check_timeout
    try:
        results = await asyncio.gather(*(_guarded(g, context, timeout) for g in groups))
    finally:
        await context.close()
    return Report(tuple(check for lines in results for check in lines))
