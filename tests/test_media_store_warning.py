"""A store that is down is reported once per outage, not on every retry (unit test of
MediaService's bucket check with a stand-in store)."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest

from appliance.adapters.object_store import ObjectStore, StoreUnavailable
from appliance.config import StorageConfig
from appliance.services.media import MediaService


class FlakyStore:
    def __init__(self) -> None:
        self.up = False

    async def ensure_bucket(self) -> None:
        if not self.up:
            raise StoreUnavailable("connection refused")


async def test_store_down_is_warned_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    media = MediaService(
        StorageConfig(), cast(ObjectStore, store), cast(Any, None), cast(Any, None), time_now
    )
    caplog.set_level(logging.DEBUG, logger="appliance.services.media")
    for _ in range(5):
        assert not await media._ensure_bucket()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "object store not ready" in warnings[0].getMessage()
    store.up = True
    assert await media._ensure_bucket()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "object store is ready"
    ]


def time_now() -> float:
    return 0.0
