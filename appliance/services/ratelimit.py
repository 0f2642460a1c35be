"""Rate limits: a token bucket per user and event class, shared by all of the user's sockets.

Each event also drains an *abuse* bucket that holds `abuse_factor` times the budget of
`abuse_window` seconds and refills `abuse_factor` times as fast. Traffic at the allowed rate never
empties it; a client that keeps pushing well past the limit does, and is then disconnected.
Buckets are keyed by user, not socket, so reconnecting does not refill them. They live behind
`RateLimiter`; the first implementation is in this process (a Redis one can serve many workers).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from appliance.config import RateLimitsConfig
from appliance.observability.metrics import Metrics
from appliance.services.clock import Clock


class EventClass(StrEnum):
    CHAT = "chat"
    READ = "read"
    TYPING = "typing"
    SIGNALING = "signaling"
    MEDIA = "media"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0
    abusive: bool = False


@dataclass(frozen=True, slots=True)
class BucketSpec:
    rate: float
    burst: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter(Protocol):
    async def take(self, user_id: int, event_class: EventClass) -> Decision: ...


def bucket_specs(config: RateLimitsConfig) -> dict[EventClass, tuple[BucketSpec, BucketSpec]]:
    """Per class: the limit itself and the abuse bucket that guards it."""
    specs: dict[EventClass, tuple[BucketSpec, BucketSpec]] = {}
    for event_class in EventClass:
        rate = float(getattr(config, f"{event_class.value}_rate"))
        burst = float(getattr(config, f"{event_class.value}_burst"))
        budget = rate * config.abuse_window + burst
        abuse = BucketSpec(rate=rate * config.abuse_factor, burst=budget * config.abuse_factor)
        specs[event_class] = (BucketSpec(rate, burst), abuse)
    return specs


class MemoryRateLimiter:
    def __init__(
        self, config: RateLimitsConfig, clock: Clock, *, metrics: Metrics | None = None
    ) -> None:
        self._metrics = metrics
        self._specs = bucket_specs(config)
        self._clock = clock
        self._buckets: dict[tuple[int, EventClass, bool], _Bucket] = {}
        self._last_prune = clock()

    def _refill(self, key: tuple[int, EventClass, bool], spec: BucketSpec, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(spec.burst, now)
        else:
            bucket.tokens = min(spec.burst, bucket.tokens + (now - bucket.updated) * spec.rate)
            bucket.updated = now
        return bucket

    async def take(self, user_id: int, event_class: EventClass) -> Decision:
        now = self._clock()
        self._prune(now)
        limit, abuse = self._specs[event_class]
        guard = self._refill((user_id, event_class, True), abuse, now)
        guard.tokens -= 1
        if guard.tokens < 0:
            guard.tokens = 0
            if self._metrics is not None:
                self._metrics.limited(event_class.value)
            return Decision(False, retry_after=1.0 / limit.rate, abusive=True)
        bucket = self._refill((user_id, event_class, False), limit, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return Decision(True)
        if self._metrics is not None:
            self._metrics.limited(event_class.value)
        return Decision(False, retry_after=(1 - bucket.tokens) / limit.rate)

    def _prune(self, now: float) -> None:
        """Forget buckets that have been full for a while (idle users)."""
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        stale = []
        for key, bucket in self._buckets.items():
            spec = self._specs[key[1]][1 if key[2] else 0]
            if bucket.tokens + (now - bucket.updated) * spec.rate >= spec.burst:
                stale.append(key)
        for key in stale:
            del self._buckets[key]
