"""A real managed store (`rclone serve s3`) for tests, started the way `appliance store` does."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from appliance.adapters.object_store import MinioObjectStore
from appliance.config import Settings
from appliance.services.store_server import prepare
from tests.support import stop_process
from tests.test_cli import free_port


def storage_overrides(**changes: Any) -> dict[str, Any]:
    return {"address": f"127.0.0.1:{free_port()}", **changes}


@asynccontextmanager
async def running_store(settings: Settings) -> AsyncIterator[subprocess.Popen[bytes]]:
    argv, env = prepare(settings)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = MinioObjectStore(settings.config.storage)
    try:
        async with asyncio.timeout(20):
            while True:
                assert proc.poll() is None, "the store exited during start-up"
                try:
                    await store.ensure_bucket()
                    break
                except Exception:
                    await asyncio.sleep(0.05)
        yield proc
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()
