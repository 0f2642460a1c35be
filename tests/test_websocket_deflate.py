"""permessage-deflate is declined unless `web.websocket_deflate` is on (docs/config.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from appliance.transport.server import _uvicorn_config
from tests.support import make_settings, running_server


async def negotiated_compression(url: str) -> int:
    """Open an engine.io websocket offering deflate; 0 when the server declined it."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, compress=15) as ws:
        opened = await ws.receive_str(timeout=5)
        assert opened.startswith("0{")
        return ws.compress


async def test_deflate_is_declined_by_default(tmp_path: Path) -> None:
    async with running_server(tmp_path) as server:
        assert await negotiated_compression(server.url) == 0


async def test_deflate_is_accepted_when_switched_on(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"web": {"websocket_deflate": True}}) as server:
        assert await negotiated_compression(server.url) > 0  # uvicorn answers 12 window bits


def test_the_served_config_follows_the_setting(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("never served")

    off = _uvicorn_config(app, make_settings(tmp_path / "off"))
    on = _uvicorn_config(app, make_settings(tmp_path / "on", {"web": {"websocket_deflate": True}}))
    assert off.ws_per_message_deflate is False
    assert on.ws_per_message_deflate is True
