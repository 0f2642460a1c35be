"""Malformed engine.io / Socket.IO frames over a raw websocket: the socket that sent one is
closed, the server logs at most one short WARNING per client address (no traceback, no frame
content), and every other socket carries on."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

import aiohttp
import pytest

from appliance.transport.realtime import frames
from appliance.transport.realtime.frames import BadFrameLog
from tests.support import RunningServer

#: Not engine.io at all: caught by the fast path's websocket loop (engine.py). With
#: `web.fast_paths = false` engine.io's stock loop handles these its own way (see docs/config.md).
BAD_ENGINE_FRAMES: list[str | bytes] = [
    "",  # empty engine.io packet
    "9zz",  # unknown engine.io packet type
    "xxxxxxxxxx",
]
BAD_FRAMES: list[str | bytes] = [
    b"\x00\xff\xfe random bytes",
    b"4\x00\x01",  # a binary message: this protocol has none
    "4",  # engine.io MESSAGE with no Socket.IO packet in it
    "42garbage",  # an event that is not JSON
    '42["chat:message",{"room_id":',  # truncated JSON
    "42[1,2,3]",  # an event whose name is not a string
    "42{}",  # an event that is not an array
    "42[]",
    "43notjson",  # an ack that is not JSON
    '43{"x":1}',  # an ack that is not an array
    "47[]",  # unknown Socket.IO packet type
    '451-["chat:message",{"_placeholder":true,"num":0}]',  # binary event
    '40"not an object"',
]


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


async def open_socket(
    session: aiohttp.ClientSession, server: RunningServer, token: str
) -> aiohttp.ClientWebSocketResponse:
    """A Socket.IO connection by hand: engine.io OPEN, then CONNECT with the token."""
    ws = await session.ws_connect(ws_url(server))
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0{")
    await ws.send_str("40" + json.dumps({"token": token}))
    while True:  # broadcasts may come before the CONNECT answer; clients buffer them
        connected = await ws.receive_str(timeout=5)
        if connected.startswith("40{"):
            break
        assert connected.startswith("42["), connected
    return ws


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Read until the server closes the websocket or the engine.io session (True) or 5 s pass
    (False). Socket.IO
    events still in flight (the presence list) are skipped; a ping is answered."""
    try:
        async with asyncio.timeout(5):
            while True:
                msg = await ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                ):
                    return True
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "1":
                    return True  # engine.io CLOSE (the stock path closes the TCP side later)
                if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "2":
                    await ws.send_str("3")
    except TimeoutError:
        return False


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> BadFrameLog:
    log = BadFrameLog()
    monkeypatch.setattr(frames, "bad_frames", log)
    return log


@pytest.mark.timeout(90)
async def test_bad_frames_close_the_socket_with_one_short_line(
    server: RunningServer, fresh_log: BadFrameLog, caplog: pytest.LogCaptureFixture
) -> None:
    await server.add_user("mallory")
    await server.add_user("alice")
    token = await server.token("mallory")
    alice = await server.user_socket("alice")
    caplog.set_level(logging.DEBUG)
    rng = random.Random(11)
    fuzz: list[str | bytes] = [rng.randbytes(rng.randrange(1, 64)) for _ in range(10)]
    fuzz += ["4" + "".join(chr(rng.randrange(32, 127)) for _ in range(20)) for _ in range(10)]
    if server.settings.config.web.fast_paths:
        fuzz += BAD_ENGINE_FRAMES
        fuzz += ["".join(chr(rng.randrange(32, 127)) for _ in range(20)) for _ in range(10)]
    async with aiohttp.ClientSession() as session:
        for frame in [*BAD_FRAMES, *fuzz]:
            ws = await open_socket(session, server, token)
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
            assert await closed_by_server(ws), f"socket left open after {frame!r}"
            await ws.close()
    # Others carry on.
    ack = await alice.call("presence:list", {})
    assert ack["ok"] is True
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r for r in records if r.levelno >= logging.ERROR] == []
    assert all(r.exc_info is None for r in caplog.records)
    bad = [r for r in records if r.name == "appliance.transport.realtime.frames"]
    assert len(bad) == 1, [r.getMessage() for r in bad]
    line = bad[0].getMessage()
    assert line.startswith("bad frame from 127.0.0.1: ")
    assert "\n" not in line and len(line) < 200


async def test_a_well_formed_but_unknown_event_keeps_the_socket(
    server: RunningServer, fresh_log: BadFrameLog, caplog: pytest.LogCaptureFixture
) -> None:
    """Valid Socket.IO carrying an unknown event is answered, not punished."""
    await server.add_user("alice")
    token = await server.token("alice")
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as session:
        ws = await open_socket(session, server, token)
        await ws.send_str('421["no:such",{}]')
        async with asyncio.timeout(5):
            while True:
                reply = await ws.receive_str()
                if reply.startswith("431"):
                    break
        assert '"ok":false' in reply and "invalid_request" in reply
        await ws.close()
    assert caplog.records == []


def test_bad_frame_log_is_rate_limited_per_address(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = BadFrameLog(interval=60, max_addresses=2, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    assert log.report("10.0.0.1", "x") is True
    assert [log.report("10.0.0.1", "x") for _ in range(5)] == [False] * 5
    assert log.report("10.0.0.2", "y") is True
    now[0] = 61.0
    assert log.report("10.0.0.1", "x") is True
    lines: list[Any] = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[2].endswith("(5 more since the last report)")
    # Bounded memory: the oldest address is forgotten.
    log.report("10.0.0.3", "z")
    assert log.report("10.0.0.2", "y") is True
