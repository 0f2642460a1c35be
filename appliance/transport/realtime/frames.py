"""Malformed frames: the client's fault, answered by closing that one socket, logged in one line.

A frame that is not engine.io (random bytes, an unknown packet type, an empty frame) or not a
Socket.IO packet this server accepts (JSON that does not parse, an event whose name is not a
string, a binary packet: this protocol has none) closes the socket it came on. The web service
logs one WARNING for it, at most one a minute per client address, with how many more there were
since; never a traceback, never the frame's content. See docs/protocol.md, "Malformed frames".
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import socketio
from socketio import packet

log = logging.getLogger(__name__)

#: What a malformed frame may raise while it is decoded (and nothing a handler's bug raises,
#: since handlers run after decoding).
DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, AttributeError, UnicodeError)


class BadFrame(Exception):
    """A frame this server does not accept; the message says what was wrong, in a few words."""


class BadFrameLog:
    """One WARNING line per client address per `interval` seconds; the rest are counted and
    reported with the next line. Remembers at most `max_addresses` addresses."""

    def __init__(
        self,
        interval: float = 60.0,
        max_addresses: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._max = max_addresses
        self._clock = clock
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def report(self, address: str, what: str) -> bool:
        """Log (or count) one bad frame. True if a line was written."""
        now = self._clock()
        last = self._seen.get(address)
        if last is not None and now - last[0] < self._interval:
            self._seen[address] = (last[0], last[1] + 1)
            return False
        suppressed = last[1] if last is not None else 0
        self._seen[address] = (now, 0)
        self._seen.move_to_end(address)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("bad frame from %s: %s; socket closed%s", address, what, more)
        return True


bad_frames = BadFrameLog()


def client_of(environ: dict[str, Any] | None) -> str:
    scope = (environ or {}).get("asgi.scope") or {}
    client = scope.get("client")
    if client:
        return str(client[0])
    return str((environ or {}).get("REMOTE_ADDR", "unknown"))


def check_decoded(pkt: packet.Packet) -> None:
    """The shapes the handlers rely on, for packets a client sends."""
    kind = pkt.packet_type
    if kind not in (packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK):
        raise BadFrame("not a packet type a client may send")
    if not isinstance(pkt.namespace, str | None):
        raise BadFrame("namespace is not a string")
    if kind == packet.EVENT and not (
        isinstance(pkt.data, list) and pkt.data and isinstance(pkt.data[0], str)
    ):
        raise BadFrame("an event must be a JSON array starting with its name")
    if kind == packet.ACK and not isinstance(pkt.data, list):
        raise BadFrame("an ack must be a JSON array")
    if kind == packet.CONNECT and not isinstance(pkt.data, dict | None):
        raise BadFrame("connect data must be a JSON object")


class GuardedSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, closing a socket that sends a packet it cannot take instead of
    logging a traceback for it. The packet class (`wire.TextPacket`) raises `BadFrame`."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            if not isinstance(data, str) or not data:
                raise BadFrame("empty or binary message: this protocol has none")
            await super()._handle_eio_message(eio_sid, data)
        except BadFrame as exc:
            await self.drop_bad_client(eio_sid, str(exc))

    async def drop_bad_client(self, eio_sid: str, what: str) -> None:
        bad_frames.report(client_of(self.environ.get(eio_sid)), what)
        await self.eio.disconnect(eio_sid)
