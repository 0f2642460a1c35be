"""Give memory back to the system after many sockets have left.

Each connected socket holds about 30 KiB of small objects (docs/benchmarks.md, "Memory per
socket"). When thousands leave, the process keeps the pages: a closed socket's objects reference
each other, so they wait for the garbage collector, which runs rarely on an idle server
(transport/asgi.py raises its young threshold); and freed memory stays with the allocator
(pymalloc gives an arena back only once all of it is free). `appliance web` runs with
`PYTHONMALLOC=malloc` (supervision/services.py), so every object comes from glibc, whose
`malloc_trim(0)` hands free pages back. `HeapTrimmer` collects, then trims, once the socket
count has fallen by a quarter (and by at least `min_drop` sockets) since the last trim: `settle`
seconds after the last departure and once more `settle` seconds later (for what held the sockets
a little longer), so a wave of departures costs two trims (10-17 ms each at 3,000 sockets).
Where there is no glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def glibc_malloc_trim() -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class HeapTrimmer:
    def __init__(
        self,
        trim: Callable[[], object] | None,
        *,
        min_drop: int = 200,
        settle: float = 5.0,
    ) -> None:
        self._trim = trim
        self._min_drop = min_drop
        self._settle = settle
        self._peak = 0  # most sockets since the last trim
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self.trims = 0

    def sockets_changed(self, count: int) -> None:
        """Told the number of open sockets after each connect and disconnect."""
        if self._trim is None:
            return
        self._count = count
        if count > self._peak:
            self._peak = count
            return
        dropped = self._peak - count
        if dropped >= self._min_drop and dropped * 4 >= self._peak:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(self._settle, self._run)

    def _run(self, again: bool = True) -> None:
        self._timer = None
        if self._trim is None:
            return
        gc.collect()  # a closed socket's objects hold each other in cycles: free them first
        self._trim()
        self.trims += 1
        self._peak = self._count
        log.debug("heap trimmed after the sockets fell to %d", self._count)
        if again:  # what was still held by then has let go by the next settle time
            self._timer = asyncio.get_running_loop().call_later(self._settle, self._run, False)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
