from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import RunningServer, running_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A real web service on a free loopback port, grace period off for crisp presence tests."""
    async with running_server(tmp_path / "data", {"web": {"presence_grace": 0}}) as running:
        yield running
