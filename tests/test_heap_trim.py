"""HeapTrimmer: memory goes back to the system once after a wave of sockets has left."""

from __future__ import annotations

import asyncio

from appliance.supervision.services import SERVICES
from appliance.transport.realtime.heap import HeapTrimmer, glibc_malloc_trim


class CountingTrim:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


async def test_one_trim_after_a_wave_of_departures_has_settled() -> None:
    trim = CountingTrim()
    heap = HeapTrimmer(trim, min_drop=10, settle=0.05)
    for count in range(1, 101):
        heap.sockets_changed(count)
    for count in range(99, 79, -1):  # 20 left: a fifth of the peak, not yet a quarter
        heap.sockets_changed(count)
    await asyncio.sleep(0.1)
    assert trim.calls == 0
    for count in range(79, -1, -1):  # everyone leaves
        heap.sockets_changed(count)
    assert trim.calls == 0  # not while they are still leaving ...
    await asyncio.sleep(0.07)
    assert trim.calls == 1  # ... once they stopped, and once more a settle time later
    await asyncio.sleep(0.07)
    assert trim.calls == 2
    heap.sockets_changed(5)  # a few come back and go: too few to trim again
    heap.sockets_changed(0)
    await asyncio.sleep(0.2)
    assert trim.calls == 2 and heap.trims == 2


async def test_small_servers_and_stops_never_trim() -> None:
    trim = CountingTrim()
    heap = HeapTrimmer(trim, min_drop=200, settle=0.01)
    for count in (50, 100, 0):  # all left, but fewer than min_drop
        heap.sockets_changed(count)
    heap.sockets_changed(300)
    heap.sockets_changed(0)
    heap.stop()  # shutting down: the pending trim is dropped
    await asyncio.sleep(0.05)
    assert trim.calls == 0
    HeapTrimmer(None).sockets_changed(0)  # no glibc: nothing to do


def test_glibc_trim_runs_here_and_web_uses_glibc_s_allocator() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None  # Debian: glibc
    trim()
    web = next(spec for spec in SERVICES if spec.name == "web")
    assert ("PYTHONMALLOC", "malloc") in web.environment
