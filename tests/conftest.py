from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import RunningServer, running_server
from tests.turn_support import running_turn, turn_overrides


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A real web service on a free loopback port, grace period off for crisp presence tests."""
    async with running_server(tmp_path / "data", {"web": {"presence_grace": 0}}) as running:
        yield running


@pytest.fixture
async def turn_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The web service and a real coturn on loopback that allows loopback peers (the test-only
    switch), configured together so GET /api/turn points at it."""
    overrides = {"turn": turn_overrides(allow_loopback_peers=True)}
    async with (
        running_server(tmp_path / "d", overrides) as server,
        running_turn(server.settings),
    ):
        yield server
