"""The Socket.IO fast paths: the one place that reaches into python-engineio's,
python-socketio's and uvicorn's internals. `web.fast_paths = false` switches all of them off
(`socket_server` and `send_to_each` then take the libraries' stock paths); the realtime tests
run both ways (scripts/test).

1. engine.io sockets whose websocket transport costs no task and no timer per packet.

python-engineio's `AsyncSocket` runs a websocket with a reader that wraps every received frame
in a new task under `asyncio.wait_for`, and a writer task that takes every outgoing packet from
a queue, again under `wait_for`. Under chat load that was a quarter of the event loop's time
(docs/benchmarks.md, "Chat throughput"). `DirectSocket` keeps the engine.io protocol exactly
(open, upgrade from polling with the `probe` exchange, ping/pong, close) and changes only how
the websocket is driven:

- the reader awaits frames in the connection's own task; a watchdog timer, re-armed once per
  ping cycle rather than per frame, ends a connection that stays silent for
  ping_interval + ping_timeout (what `wait_for` did) or whose socket was closed;
- a packet is written to the websocket by the coroutine that sends it; if a write is already
  in progress (the transport is applying back-pressure), it joins a backlog that the writer in
  progress drains, so packets keep their order;
- under uvicorn, the frames written to one connection in one step of the event loop leave in
  one system call (`CorkedTransport`);
- under uvicorn's `websockets-sansio` protocol with no extension negotiated (permessage-deflate
  declined, the default), a packet is framed here and written straight to the connection's
  transport (`DirectSocket.write_now`) whenever nothing stands in the way (no write waiting on
  back-pressure, the connection open, no close sent): no coroutine through engine.io's ASGI
  wrapper and uvicorn's `send` per packet, and a broadcast frames its bytes once for all its
  recipients (`send_to_each`). Anything else takes the awaited path above;
- once the websocket carries the socket, what it no longer needs is let go (about 14 KiB per
  socket, docs/benchmarks.md "Memory per socket"): the handshake's environ shrinks to what is
  still read (`slim_environ`), engine.io's packet queue becomes `DRAINED`, uvicorn's receive
  queue a `Mailbox` and its request/response are dropped (`slim_protocol`), engine.io's PING
  comes from a loop timer instead of a sleeping task (`schedule_ping`), and a closed socket
  leaves the server's table at once.

Long-polling sockets are untouched. The swap happens when engine.io reports a new connection
(`DirectEngineServer._trigger_event`), before any transport runs. It relies on python-engineio
4.x internals (`AsyncSocket`, `queue`, `upgrading`/`upgraded`, `_websocket_handler`);
tests/test_engine_socket.py pins them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket
from websockets.protocol import State

from appliance.transport.realtime import frames
from appliance.transport.realtime.frames import DECODE_ERRORS, GuardedSocketServer, client_of

log = logging.getLogger(__name__)


class _Drained:
    """Stands in for engine.io's packet queue once a websocket carries the socket: packets then
    go straight to the websocket (or the backlog), never to the queue, so its asyncio.Queue
    (four deques and an Event, about 3.3 KiB) need not live as long as the socket."""

    __slots__ = ()

    def empty(self) -> bool:
        return True

    def qsize(self) -> int:
        return 0

    async def put(self, item: Any) -> None:
        return None  # only while the socket closes: nothing reads it any more

    def put_nowait(self, item: Any) -> None:
        return None

    async def join(self) -> None:
        return None


DRAINED = _Drained()


class Mailbox:
    """uvicorn's websocket receive queue, lean: one reader (engine.io's) and no size limit, so a
    list and at most one waiting future rather than an asyncio.Queue (about 3 KiB)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self, items: list[Any]) -> None:
        self._items = items
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


def slim_protocol(protocol: Any) -> None:
    """After the handshake: drop uvicorn's references to the HTTP request and response
    (websockets' Request and Response with their headers) and swap its receive queue for a
    Mailbox. uvicorn reads neither after `websocket.accept`."""
    if not getattr(protocol, "handshake_complete", False):
        return
    if hasattr(protocol, "request") and hasattr(protocol, "response"):
        protocol.request = None
        protocol.response = None
    queue = getattr(protocol, "queue", None)
    waiting = getattr(queue, "_getters", None) or getattr(queue, "_putters", None)
    if type(queue) is asyncio.Queue and not waiting:
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        protocol.queue = Mailbox(items)


#: What of a websocket handshake's environ is read after engine.io's connect event: its
#: upgrade (HTTP_UPGRADE, HTTP_CONNECTION, asgi.*) and client_of (asgi.scope, REMOTE_ADDR).
KEPT_HEADERS = frozenset({"HTTP_UPGRADE", "HTTP_CONNECTION"})


def slim_environ(environ: dict[str, Any]) -> None:
    """A websocket's environ lives as long as the socket (python-socketio keeps it): drop the
    request-body reader (engine.io's translate_request defines a class per request for it,
    about 2.5 KiB) and the header copies nobody reads after the handshake."""
    if str(environ.get("HTTP_UPGRADE", "")).lower() != "websocket":
        return  # long-polling: the body reader is still needed
    environ.pop("wsgi.input", None)
    for key in [k for k in environ if k.startswith("HTTP_") and k not in KEPT_HEADERS]:
        del environ[key]


def websocket_frame(data: str | bytes) -> bytes:
    """One whole, unmasked server-to-client websocket frame (RFC 6455 section 5.2): a text
    frame for str, a binary one for bytes, as websockets' `send_text`/`send_binary` write them
    with no extension."""
    if isinstance(data, str):
        payload, first = data.encode(), 0x81  # FIN + text
    else:
        payload, first = data, 0x82  # FIN + binary
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def raw_protocol(ws: Any) -> Any:
    """uvicorn's `websockets-sansio` protocol behind engine.io's websocket `ws`, when a frame
    built by `websocket_frame` may be written to its transport as is: the handshake done and no
    extension (permessage-deflate) negotiated. None otherwise (another server or protocol)."""
    protocol: Any = getattr(getattr(ws, "asgi_send", None), "__self__", None)
    conn = getattr(protocol, "conn", None)
    if (
        conn is None
        or getattr(conn, "extensions", None) != []
        or not getattr(protocol, "handshake_complete", False)
        or getattr(protocol, "initial_response", True) is not None
        or not isinstance(getattr(protocol, "writable", None), asyncio.Event)
        or not hasattr(protocol, "close_sent")
        or not hasattr(protocol, "disconnected")
    ):
        return None
    return protocol


class CorkedTransport:
    """Wraps a connection's transport so that what is written to it in one step of the event
    loop leaves in one `write` (one system call) at the start of the next step, or as soon as
    64 KiB have gathered (so the real transport still applies back-pressure).

    A chat batch's commit wakes up to 2 writes per socket in the same step (the ack of its own
    message and the broadcast of its partner's); this sends them together. Order is kept;
    `close()` sends what is pending first; whatever else is asked of it goes to the real
    transport. `DirectSocket` installs it under uvicorn's websocket protocol (found through the
    ASGI `send` callable); with any other server it is simply not used."""

    __slots__ = ("_loop", "_pending", "_size", "_soon", "_transport")

    FLUSH_AT = 65536

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._size = 0
        self._soon = False  # a flush at the start of the next step is scheduled

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._size = len(data)
        else:
            self._pending.append(data)
            self._size += len(data)
        if self._size >= self.FLUSH_AT:
            self._flush()
        elif not self._soon:
            self._soon = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._soon = False
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    @classmethod
    def install(cls, ws: Any) -> bool:
        """Put one under the ASGI server's protocol behind engine.io's websocket `ws`, if that
        protocol keeps its transport in `.transport` (uvicorn's do). True if it is in place."""
        protocol: Any = getattr(getattr(ws, "asgi_send", None), "__self__", None)
        transport = getattr(protocol, "transport", None)
        if transport is None or not callable(getattr(transport, "write", None)):
            return False
        if not isinstance(transport, cls):
            protocol.transport = cls(transport, asyncio.get_running_loop())
        return True


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    # engine.io's own state, set by BaseSocket.__init__ (declared for the type checker)
    connected: bool
    upgrading: bool
    upgraded: bool
    closed: bool
    closing: bool
    last_ping: float | None
    queue: Any
    # Class-level defaults: instances start life as AsyncSocket and are re-classed.
    _ws: Any = None
    _writing: bool = False
    _backlog: deque[Any] | None = None
    _broken: bool = False
    _last_frame: float = 0.0
    _waiting: bool = False
    _expired: bool = False
    _client: str = "unknown"
    _proto: Any = None  # see raw_protocol: set while packets may be written straight through
    _ping_timer: asyncio.TimerHandle | None = None

    def schedule_ping(self) -> None:
        """engine.io's next PING after ping_interval from a timer, not a sleeping task (a task,
        two coroutine frames and a future per socket, ~1.3 KiB, and a closed socket kept
        alive until the sleep ends)."""
        if self.last_ping:  # once the previous ping cycle completed (engine.io's rule)
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        pkt = packet.Packet(packet.PING)
        if self._proto is not None and self.write_now(websocket_frame(pkt.encode())):
            return
        self.server.start_background_task(self._ping_awaited, pkt)

    async def _ping_awaited(self, pkt: Any) -> None:
        """A PING on the awaited path (polling, or a websocket under back-pressure)."""
        with contextlib.suppress(exceptions.SocketIsClosedError):
            await self.send(pkt)

    def write_now(self, frame: bytes) -> bool:
        """Write whole websocket frames to the connection at once if nothing stands in the way:
        no write in progress (order), the transport not pushing back, the websocket open, no
        close sent, the client not overdue. False: take the awaited path (`send`)."""
        proto = self._proto
        if (
            proto is None
            or self._writing
            or self.closed
            or proto.close_sent
            or proto.disconnected
            or not proto.writable.is_set()
            or proto.conn.state is not State.OPEN
        ):
            return False
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            return False  # send() closes it
        proto.transport.write(frame)
        return True

    async def send(self, pkt: Any) -> None:
        batch = self.server.everyone_batch
        if batch is not None and batch.pending:
            batch.before_send(self.sid)  # presence queued for this socket goes first
        ws = self._ws
        if ws is None:
            await super().send(pkt)  # polling, or the websocket is not up yet: the queue
            return
        if self._proto is not None and self.write_now(websocket_frame(pkt.encode())):
            return
        if not await self.check_ping_timeout():
            return
        if self._writing:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(pkt)
            return
        await self._write(ws, pkt)

    async def _write(self, ws: Any, pkt: Any) -> None:
        self._writing = True
        try:
            await ws.send(pkt.encode())
            while self._backlog:
                await ws.send(self._backlog.popleft().encode())
            self._backlog = None  # 760 bytes a deque; most sockets never need one again
        except Exception:  # the peer is gone; the reader sees the close
            self._broken = True
            if self._backlog:
                self._backlog.clear()
        finally:
            self._writing = False

    async def _websocket_handler(self, ws: Any) -> None:
        server = self.server
        if self.connected:
            if not await self._upgrade(ws):
                return
        else:
            self.connected = True
            self.upgraded = True
        # Whatever was queued before the websocket took over (the OPEN packet, or what the
        # application sent during an upgrade) goes first, in order.
        backlog = []
        while not self.queue.empty():
            queued = self.queue.get_nowait()
            self.queue.task_done()
            if queued is not None:
                backlog.append(queued)
        self._backlog = deque(backlog) if backlog else None
        self.queue = DRAINED
        self._ws = ws
        if CorkedTransport.install(ws):
            self._proto = raw_protocol(ws)
            slim_protocol(ws.asgi_send.__self__)
        if self._backlog:
            await self._write(ws, self._backlog.popleft())
        loop = asyncio.get_running_loop()
        reader = asyncio.current_task()
        silence = server.ping_interval + server.ping_timeout
        self._last_frame = loop.time()
        timer = loop.call_later(silence, self._watch, loop, reader, silence)
        cancelled = False
        try:
            while not self.closed and not self._broken:
                self._waiting = True
                try:
                    data = await ws.wait()
                except asyncio.CancelledError:
                    if self._expired and reader is not None:
                        reader.uncancel()  # our watchdog's doing: a silent or closed socket
                    else:
                        cancelled = True
                    break
                except Exception:  # the connection closed (OSError) or failed
                    break
                finally:
                    self._waiting = False
                if data is None:
                    break
                if len(data) > server.max_http_buffer_size:
                    break  # what engine.io does with a packet over the limit: hang up
                self._last_frame = loop.time()
                try:
                    pkt = packet.Packet(encoded_packet=data)
                    if not 0 <= pkt.packet_type < len(packet.packet_names):
                        raise exceptions.UnknownPacketError()
                except (*DECODE_ERRORS, exceptions.UnknownPacketError):
                    frames.bad_frames.report(self._client, "not an engine.io packet")
                    break
                try:
                    await self.receive(pkt)
                except exceptions.SocketIsClosedError:
                    break
                except Exception:
                    log.exception("engine.io receive failed")
        finally:
            timer.cancel()
            if self._ping_timer is not None:
                self._ping_timer.cancel()
                self._ping_timer = None
            self._ws = None
            self._proto = None
        await ws.close()
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        if self.closed and server.sockets.get(self.sid) is self:
            # engine.io's service task would drop it within ping_timeout; free it now
            del server.sockets[self.sid]
        if cancelled:
            raise asyncio.CancelledError

    def _watch(self, loop: asyncio.AbstractEventLoop, reader: Any, silence: float) -> None:
        """Once per ping cycle: end a reader that has been waiting for too long."""
        if self._ws is None:
            return
        quiet_for = loop.time() - self._last_frame
        if self._waiting and (self.closed or quiet_for >= silence):
            self._expired = True
            reader.cancel()
            return
        loop.call_later(max(silence - quiet_for, 1.0), self._watch, loop, reader, silence)

    async def _upgrade(self, ws: Any) -> bool:
        """polling -> websocket: `2probe` / `3probe`, end the pending poll, then `5`."""
        self.upgrading = True
        try:
            probe = packet.Packet(encoded_packet=await ws.wait())
            if probe.packet_type != packet.PING or probe.data != "probe":
                log.info("%s: websocket upgrade without the PING probe", self.sid)
                return False
            await ws.send(packet.Packet(packet.PONG, data="probe").encode())
            await self.queue.put(packet.Packet(packet.NOOP))  # the pending poll returns
            upgrade = packet.Packet(encoded_packet=await ws.wait())
            if upgrade.packet_type != packet.UPGRADE:
                log.info("%s: websocket upgrade without the UPGRADE packet", self.sid)
                self.upgraded = False
                return False
            self.upgraded = True
            return True
        except OSError:
            return False
        finally:
            self.upgrading = False


class DirectEngineServer(engineio.AsyncServer):  # type: ignore[misc]
    #: Set by `EveryoneBatch`: its events leave before anything else sent to the same socket.
    everyone_batch: EveryoneBatch | None = None

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "connect":
            sock = self.sockets.get(args[0])
            if type(sock) is AsyncSocket:
                sock.__class__ = DirectSocket
                environ = args[1] if len(args) > 1 else None
                sock._client = client_of(environ)
                if isinstance(environ, dict):
                    slim_environ(environ)
        return await super()._trigger_event(event, *args, **kwargs)


class DirectSocketServer(GuardedSocketServer):
    """python-socketio's server on `DirectEngineServer`."""

    def _engineio_server_class(self) -> type[engineio.AsyncServer]:
        return DirectEngineServer


class StockSocketServer(GuardedSocketServer):
    """python-socketio's server on its own engine.io server: the stock paths."""


def socket_server(fast: bool, **options: Any) -> socketio.AsyncServer:
    """The Socket.IO server, with the fast paths or without."""
    server: socketio.AsyncServer = (DirectSocketServer if fast else StockSocketServer)(**options)
    return server


def event_packet(sio: socketio.AsyncServer, event: str, payload: Any) -> Any:
    """The engine.io MESSAGE packet carrying a Socket.IO EVENT on the default namespace."""
    encoded = sio.packet_class(socketio.packet.EVENT, namespace="/", data=[event, payload]).encode()
    return packet.Packet(packet.MESSAGE, encoded)


async def send_to_each(
    sio: socketio.AsyncServer, event: str, payload: Any, eio_sids: list[str]
) -> None:
    """2. A broadcast encoded once and handed to each recipient's engine.io socket in turn:
    python-socketio's `emit` spawns and awaits a task per recipient, which was a tenth of the
    event loop's time under chat load (docs/benchmarks.md, "Chat throughput"). Only with the
    in-process manager; the notifier uses `emit` otherwise."""
    frame = event_packet(sio, event, payload)
    wire = websocket_frame(frame.encode())  # the same bytes for every websocket recipient
    batch = sio.eio.everyone_batch
    if batch is not None and batch.pending:
        batch.flush()  # queued presence goes first, as if it had been sent at once
    sockets = sio.eio.sockets
    for eio_sid in eio_sids:
        sock = sockets.get(eio_sid)
        if sock is None:
            continue  # it left while we were sending
        if type(sock) is DirectSocket and sock._proto is not None and sock.write_now(wire):
            continue
        try:
            await sock.send(frame)
        except exceptions.SocketIsClosedError:
            continue  # it left while we were sending; the others still get theirs


class EveryoneBatch:
    """3. Events for every socket that may wait a little (presence), sent in batches.

    `add` queues an event; `BATCH_DELAY` seconds after the first of a batch, each socket gets
    all of the batch's events (but those it is excluded from) as one write. When many people
    connect at once, N connects then cost each socket one write per batch instead of N, and
    the work per event is one encoding instead of one step per socket. Sockets that cannot
    be written straight through (`DirectSocket.write_now`) get the same packets, in order,
    through the awaited path. Order is kept: anything else about to be sent to a socket that
    has queued events flushes the batch first (a socket that connected during the batch, and
    has none queued, does not). Used with the in-process manager only (`SocketNotifier`)."""

    BATCH_DELAY = 0.1

    def __init__(
        self,
        sio: socketio.AsyncServer,
        never: set[str],
        delivered: Callable[[str, int], None] | None = None,
    ) -> None:
        self._sio = sio
        self._never = never  # socket.io sids that get none of these (kept up to date outside)
        self._delivered = delivered
        self._events: list[tuple[str, Any, bytes, str | None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._late: dict[str, int] = {}  # sockets that joined during the batch: first event
        self._late_eio: dict[str, int] = {}  # the same, by engine.io sid
        self._unlisted: set[str] = set()  # connected, their presence list not made yet
        if isinstance(sio.eio, DirectEngineServer):
            sio.eio.everyone_batch = self

    @property
    def pending(self) -> bool:
        return bool(self._events)

    def joined(self, sid: str) -> None:
        """A socket connected: until its presence list is made (`listed`), it gets none of
        these events (the list will show them) and what is sent to it flushes nothing."""
        self._unlisted.add(sid)

    def listed(self, sid: str) -> None:
        """The socket's presence list is being made: it gets only the events queued from now
        on, as if they had been sent at once."""
        self._unlisted.discard(sid)
        if self._events:
            self._late[sid] = len(self._events)
            eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is not None:
                self._late_eio[eio_sid] = len(self._events)

    def before_send(self, eio_sid: str) -> None:
        """Something else is about to be sent to this socket: if events are queued for it,
        they leave first (the whole batch, now)."""
        first = self._late_eio.get(eio_sid, 0)
        if first >= len(self._events):
            return
        manager = self._sio.manager
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid in self._unlisted:
            return
        for _, _, _, skip_room in self._events[first:]:
            skipped = skip_room is not None and any(
                other == sid for other, _ in manager.get_participants("/", skip_room)
            )
            if not skipped:
                self.flush()  # this one is for it
                return

    def add(self, event: str, payload: Any, skip_room: str | None = None) -> None:
        """Queue `event` for every socket of the namespace but those in room `skip_room` when
        the batch leaves (a user's room: none of their sockets, even one opened meanwhile)."""
        pkt = event_packet(self._sio, event, payload)
        self._events.append((event, pkt, websocket_frame(pkt.encode()), skip_room))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.BATCH_DELAY, self.flush)

    def flush(self) -> None:
        queued, self._events = self._events, []
        late, self._late = self._late, {}
        self._late_eio = {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not queued:
            return
        manager = self._sio.manager
        events = [
            (event, pkt, wire, frozenset(sid for sid, _ in manager.get_participants("/", room)))
            for event, pkt, wire, room in queued
        ]
        unlisted = self._unlisted
        excluded = frozenset().union(*(skip for _, _, _, skip in events), late, unlisted)
        everything = b"".join(wire for _, _, wire, _ in events)
        sockets = self._sio.eio.sockets
        counts = [0] * len(events)  # recipients per event among the excluded ones
        plain = 0  # sockets that get every event of the batch
        never = self._never
        still_unlisted: set[str] = set()
        for sid, eio_sid in manager.get_participants("/", None):
            if sid in never:
                continue
            if sid in unlisted:
                still_unlisted.add(sid)  # (one that left before its list is forgotten here)
                continue
            if sid in excluded:
                first = late.get(sid, 0)
                mine = [i for i in range(first, len(events)) if sid not in events[i][3]]
                if not mine:
                    continue
                for i in mine:
                    counts[i] += 1
                data = b"".join(events[i][2] for i in mine)
            else:
                plain += 1
                mine, data = None, everything
            sock = sockets.get(eio_sid)
            if sock is None:
                continue
            if type(sock) is DirectSocket and sock._proto is not None and sock.write_now(data):
                continue
            packets = [e[1] for e in events] if mine is None else [events[i][1] for i in mine]
            task = asyncio.create_task(self._send_slowly(sock, packets))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._unlisted = still_unlisted
        if self._delivered is not None:
            for (event, _, _, _), count in zip(events, counts, strict=True):
                self._delivered(event, count + plain)

    @staticmethod
    async def _send_slowly(sock: Any, packets: list[Any]) -> None:
        for pkt in packets:
            try:
                await sock.send(pkt)
            except exceptions.SocketIsClosedError:
                return
