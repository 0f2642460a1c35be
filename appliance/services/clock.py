"""Time, injectable so services can be tested without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

wall_clock: Clock = time.time
