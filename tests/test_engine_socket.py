"""The engine.io websocket transport without a task per packet (appliance/transport/realtime/
engine.py): the sockets really are swapped, upgrades from polling work, order survives
back-pressure, a silent client is hung up on, and the library internals it leans on are there."""

from __future__ import annotations

import asyncio
import inspect
import json
from pathlib import Path
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
from engineio.async_socket import AsyncSocket
from websockets.frames import Frame, Opcode

from appliance.transport.realtime.engine import (
    DRAINED,
    CorkedTransport,
    DirectEngineServer,
    DirectSocket,
    DirectSocketServer,
    EveryoneBatch,
    Mailbox,
    StockSocketServer,
    websocket_frame,
)
from tests.support import RunningServer, running_server


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


async def raw_connect(session: aiohttp.ClientSession, server: RunningServer, token: str) -> Any:
    """An engine.io v4 / socket.io v5 connection by hand; returns (ws, socket.io sid)."""
    ws = await session.ws_connect(ws_url(server), max_msg_size=0)
    assert (await ws.receive_str()).startswith("0")
    await ws.send_str("40" + json.dumps({"token": token}))
    while True:
        frame = await ws.receive_str()
        if frame.startswith("40"):
            return ws, json.loads(frame[2:])["sid"]


def server_socket(server: RunningServer, eio_sid: str) -> Any:
    return server.app.sio.eio.sockets[eio_sid]


def socket_of(server: RunningServer, sid: str) -> Any:
    """The server's engine.io socket behind a Socket.IO sid."""
    return server_socket(server, server.app.sio.manager.eio_sid_from_sid(sid, "/"))


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def test_the_library_internals_we_lean_on_are_there() -> None:
    # The swap happens on engine.io's "connect" event, after the socket is registered and
    # before its transport runs; the websocket transport calls `_websocket_handler`.
    connect = inspect.getsource(engineio.AsyncServer._handle_connect)
    assert "self.sockets[sid] = s" in connect
    assert connect.index("_trigger_event('connect'") < connect.index("handle_get_request")
    upgrade = inspect.getsource(AsyncSocket._upgrade_websocket)
    assert "self._websocket_handler" in upgrade
    for name in ("queue", "upgrading", "upgraded", "connected", "closed"):
        assert name in inspect.getsource(engineio.base_socket.BaseSocket.__init__)
    for name in ("check_ping_timeout", "receive", "close", "send", "schedule_ping"):
        assert callable(getattr(AsyncSocket, name))
    assert callable(socketio.AsyncServer._engineio_server_class)


async def test_websocket_connections_get_the_direct_socket(server: RunningServer) -> None:
    assert isinstance(server.app.sio.eio, DirectEngineServer)
    await server.add_user("alice")
    alice = await server.user_socket("alice")
    sock = server_socket(server, alice.sio.eio.sid)
    assert type(sock) is DirectSocket
    # uvicorn's websocket protocol writes through the cork
    assert isinstance(sock._ws.asgi_send.__self__.transport, CorkedTransport)
    assert (await alice.call("presence:list"))["ok"] is True


def test_frames_built_here_are_the_frames_websockets_builds() -> None:
    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte UTF-8 across the length limits
        expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        assert websocket_frame(text) == expected
        data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
        expected = Frame(Opcode.BINARY, data).serialize(mask=False)
        assert websocket_frame(data) == expected


async def test_packets_are_framed_here_and_written_straight_through(server: RunningServer) -> None:
    """With deflate declined, a packet skips engine.io's ASGI wrapper and uvicorn's `send`."""
    await server.add_user("alice")
    await server.add_user("bob")
    alice = await server.user_socket("alice")
    sock = server_socket(server, alice.sio.eio.sid)
    assert sock._proto is sock._ws.asgi_send.__self__
    sent: list[Any] = []
    real_send = sock._ws.send

    async def spy(message: Any) -> None:
        sent.append(message)
        await real_send(message)

    sock._ws.send = spy
    await server.user_socket("bob")
    assert (await alice.next("user_online"))["username"] == "bob"  # a broadcast
    listed = await alice.call("presence:list")  # an ack
    assert [u["username"] for u in listed["users"]] == ["alice", "bob"]
    assert sent == []  # both went straight to the transport
    # the awaited path still works where the straight one may not (a write in progress)
    sock._writing = True
    assert sock.write_now(b"") is False
    sock._writing = False


async def test_with_deflate_packets_take_uvicorn_s_path(tmp_path: Path) -> None:
    async with running_server(tmp_path, {"web": {"websocket_deflate": True}}) as server:
        await server.add_user("alice")
        token = await server.token("alice")
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url(server), compress=15)
            assert ws.compress > 0
            assert (await ws.receive_str()).startswith("0")
            await ws.send_str("40" + json.dumps({"token": token}))
            while not (await ws.receive_str(timeout=5)).startswith("40"):
                pass
            eio_sid = next(iter(server.app.sio.eio.sockets))
            sock = server_socket(server, eio_sid)
            assert type(sock) is DirectSocket and sock._proto is None
            while not (await ws.receive_str(timeout=5)).startswith('42["presence:list"'):
                pass
            await ws.close()


async def test_upgrade_from_polling_keeps_both_directions(server: RunningServer) -> None:
    await server.add_user("alice")
    bob_id = await server.add_user("bob")
    alice = server.client()
    await alice.connect(await server.token("alice"), transports=["polling", "websocket"])
    await alice.next("presence:list")
    await until(lambda: alice.sio.eio.current_transport == "websocket")
    sock = server_socket(server, alice.sio.eio.sid)
    assert type(sock) is DirectSocket
    assert sock.upgraded
    # client -> server, with its ack back
    assert (await alice.call("presence:list"))["ok"] is True
    # server -> client, after the upgrade
    await server.user_socket("bob")
    assert (await alice.next("user_online"))["user_id"] == bob_id


async def test_back_pressure_keeps_the_order(server: RunningServer) -> None:
    await server.add_user("alice")
    token = await server.token("alice")
    count, pad = 2000, "x" * 4000  # ~8 MB: far more than the socket buffers hold
    async with aiohttp.ClientSession() as session:
        ws, sid = await raw_connect(session, server, token)
        sock = socket_of(server, sid)
        notifier = server.app.notifier
        sending = asyncio.gather(
            *(notifier.to_socket(sid, "test:seq", {"n": i, "pad": pad}) for i in range(count))
        )
        # The client reads nothing yet, so the transport pushes back and packets queue up.
        await until(lambda: sock._writing and bool(sock._backlog))
        seen: list[int] = []
        while len(seen) < count:
            frame = await ws.receive_str(timeout=10)
            if frame.startswith('42["test:seq"'):
                seen.append(json.loads(frame[2:])[1]["n"])
        await asyncio.wait_for(sending, 10)
        assert seen == list(range(count))
        await ws.close()


async def test_a_silent_client_is_hung_up_on(tmp_path: Path) -> None:
    overrides = {"web": {"presence_grace": 0, "ping_interval": 1, "ping_timeout": 1}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("bob")
        async with aiohttp.ClientSession() as session:
            ws, sid = await raw_connect(session, server, await server.token("bob"))
            sock = socket_of(server, sid)
            # Never answer a ping: within a few ping cycles the server closes the websocket.
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
            assert ws.closed
            assert sock._ws is None
            await until(lambda: sock.closed)  # right after the websocket's close frame


async def test_pings_come_from_timers_and_a_live_client_stays(tmp_path: Path) -> None:
    """engine.io's PING every ping_interval from a loop timer (no sleeping task per socket);
    a client that answers stays connected across cycles, and what the websocket no longer
    needs after the handshake is let go (docs/benchmarks.md, "Memory per socket")."""
    overrides = {"web": {"ping_interval": 1, "ping_timeout": 1}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("bob")
        async with aiohttp.ClientSession() as session:
            ws, sid = await raw_connect(session, server, await server.token("bob"))
            sock = socket_of(server, sid)
            pings = 0
            async with asyncio.timeout(10):
                while pings < 3:  # three cycles: longer than ping_interval + ping_timeout
                    frame = await ws.receive_str()
                    if frame == "2":
                        pings += 1
                        await ws.send_str("3")
            assert not sock.closed and sock._ws is not None
            sending_pings = [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())]
            assert sending_pings == []
            assert sock.queue is DRAINED and sock._backlog is None
            protocol = sock._ws.asgi_send.__self__
            assert type(protocol.queue) is Mailbox and protocol.request is None
            assert "wsgi.input" not in server.app.sio.environ[sock.sid]
            await server.app.notifier.to_socket(sid, "test:ping", {"n": 1})  # still served
            while not (frame := await ws.receive_str()).startswith('42["test:ping"'):
                pass
            await ws.close()


class RecordingTransport:
    """Stands in for an asyncio transport: records writes and closing."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


async def test_the_cork_sends_one_step_s_writes_together_and_in_order() -> None:
    real = RecordingTransport()
    cork = CorkedTransport(real, asyncio.get_running_loop())
    cork.write(b"a")
    cork.write(b"b")
    cork.write(b"c")
    assert real.writes == []  # nothing yet: the rest of this step may add more
    await asyncio.sleep(0)
    assert real.writes == [b"abc"]
    cork.write(b"d")
    await asyncio.sleep(0)
    assert real.writes == [b"abc", b"d"]
    assert cork.get_extra_info("peername") == "info peername"  # the rest goes through


async def test_the_cork_lets_a_large_write_through_at_once() -> None:
    real = RecordingTransport()
    cork = CorkedTransport(real, asyncio.get_running_loop())
    cork.write(b"x" * 100)
    cork.write(b"y" * CorkedTransport.FLUSH_AT)  # the real transport must see it to push back
    assert real.writes == [b"x" * 100 + b"y" * CorkedTransport.FLUSH_AT]
    await asyncio.sleep(0)  # the flush scheduled for the first write finds nothing left
    assert len(real.writes) == 1


async def test_presence_of_many_connects_leaves_in_one_write_per_socket(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`EveryoneBatch`: user_online events of a batch reach a socket as one write, in order."""
    monkeypatch.setattr(EveryoneBatch, "BATCH_DELAY", 2.0)  # all six connects in one batch
    names = [f"u{i}" for i in range(6)]
    for name in ["watcher", *names]:
        await server.add_user(name)
    watcher = await server.user_socket("watcher")
    sock = server_socket(server, watcher.sio.eio.sid)
    writes: list[bytes] = []
    real_write_now = sock.write_now

    def spy(data: bytes) -> bool:
        writes.append(data)
        return bool(real_write_now(data))

    sock.write_now = spy
    tokens = [await server.token(name) for name in names]
    await asyncio.gather(*(server.connect(token) for token in tokens))
    online = [(await watcher.next("user_online"))["username"] for _ in names]
    assert sorted(online) == names
    presence = [w for w in writes if b'"user_online"' in w]
    assert len(presence) == 1
    assert sum(w.count(b'"user_online"') for w in presence) == len(names)


async def test_queued_presence_goes_before_anything_else_sent_to_that_socket(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EveryoneBatch, "BATCH_DELAY", 30.0)  # only the order can flush it
    await server.add_user("watcher")
    await server.add_user("ana")
    watcher = await server.user_socket("watcher")
    ana = await server.user_socket("ana")  # her handshake frames flush nothing ...
    batch = server.app.notifier._everyone
    assert batch is not None and batch.pending
    await server.app.notifier.to_socket(watcher.sio.get_sid(), "test:after", {})
    events = [await watcher.next() for _ in range(2)]  # ... this does: presence first
    assert [name for name, _ in events] == ["user_online", "test:after"]
    assert events[0][1]["username"] == "ana"
    assert [name for name, _ in ana.drain() if name.startswith("user_")] == []


async def test_a_tab_opened_during_a_batch_gets_no_presence_of_its_own_user(
    server: RunningServer,
) -> None:
    await server.add_user("ana")
    await server.add_user("watcher")
    watcher = await server.user_socket("watcher")
    token = await server.token("ana")
    first, second = await asyncio.gather(server.connect(token), server.connect(token))
    assert (await watcher.next("user_online"))["username"] == "ana"
    for tab in (first, second):
        await tab.next("presence:list")
        await tab.call("presence:list")  # round trip: the batch has long left by now
    await asyncio.sleep(EveryoneBatch.BATCH_DELAY * 2)
    for tab in (first, second):
        assert [(n, d) for n, d in tab.drain() if n.startswith("user_")] == []


async def test_the_cork_sends_what_is_pending_before_closing() -> None:
    real = RecordingTransport()
    cork = CorkedTransport(real, asyncio.get_running_loop())
    cork.write(b"bye")
    cork.close()
    assert real.writes == [b"bye"] and real.closed
    cork.write(b"late")  # after close: dropped, not an error
    await asyncio.sleep(0)
    assert real.writes == [b"bye"]


async def test_the_fast_paths_switch_off_together(tmp_path: Path) -> None:
    """`web.fast_paths = false`: python-socketio's and engine.io's stock paths, nothing of ours
    in between but the bad-frame guard."""
    async with running_server(tmp_path / "stock", {"web": {"fast_paths": False}}) as server:
        assert type(server.app.sio) is StockSocketServer
        assert type(server.app.sio.eio) is engineio.AsyncServer
        await server.add_user("ana")
        sock = await server.user_socket("ana")
        (eio_socket,) = server.app.sio.eio.sockets.values()
        assert type(eio_socket) is AsyncSocket
        assert (await sock.call("presence:list", {}))["ok"] is True
    async with running_server(tmp_path / "fast") as server:
        assert type(server.app.sio) is DirectSocketServer
        await server.add_user("ana")
        await server.user_socket("ana")
        (eio_socket,) = server.app.sio.eio.sockets.values()
        assert type(eio_socket) is DirectSocket
