"""STUN probe (pystun3): the box's address as a STUN server sees it, and the NAT type.

Only the servers given are asked; with none configured nothing is sent anywhere.

pystun3 retries forever when a server answers with an error response (coturn does, to the
RFC 3489 CHANGE-REQUEST it disables with `no-rfc5780`), so every exchange runs under a watchdog
that closes its socket at a deadline.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import stun

T = TypeVar("T")
UNKNOWN_NAT = "Unknown"


@dataclass(frozen=True, slots=True)
class StunResult:
    server: str
    nat_type: str
    external_ip: str | None
    external_port: int | None


def parse_server(server: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port`, optionally prefixed `stun:`; port 3478 by default."""
    server = server.removeprefix("stun:")
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    else:
        host, port = server, ""
    return host, int(port) if port else 3478


def _source_for(host: str) -> tuple[int, str]:
    v6 = ":" in host
    if host.startswith("127.") or host == "::1":
        return (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
    any_ip = "::" if v6 else "0.0.0.0"  # noqa: S104 - a client socket on every interface
    return (socket.AF_INET6 if v6 else socket.AF_INET), any_ip


def _guarded(
    family: int,
    source_ip: str,
    wait: float,
    deadline: float,
    exchange: Callable[[socket.socket, int], T],
) -> T | None:
    """Run `exchange(sock, source_port)`; None if it fails or outlives `deadline` seconds."""
    stun._initialize()  # builds pystun3's message tables (its get_nat_type does this first)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    watchdog = threading.Timer(deadline, sock.close)
    try:
        sock.settimeout(wait)
        sock.bind((source_ip, 0))
        watchdog.start()
        return exchange(sock, sock.getsockname()[1])
    except (OSError, KeyError, ValueError):
        return None
    finally:
        watchdog.cancel()
        sock.close()


def _binding_one(server: str, wait: float, source_ip: str | None = None) -> tuple[str, int] | None:
    host, port = parse_server(server)
    family, default_source = _source_for(host)
    source = source_ip or default_source

    def exchange(sock: socket.socket, source_port: int) -> dict[str, Any]:
        result: dict[str, Any] = stun.stun_test(sock, host, port, source, source_port)
        return result

    answer = _guarded(family, source, wait, wait * 5, exchange)
    if not answer or not answer.get("Resp") or not answer.get("ExternalIP"):
        return None
    return str(answer["ExternalIP"]), int(answer["ExternalPort"])


def _nat_type(server: str, source_ip: str, wait: float) -> str:
    host, port = parse_server(server)
    family, _ = _source_for(host)

    def exchange(sock: socket.socket, source_port: int) -> str:
        nat_type, _ = stun.get_nat_type(sock, source_ip, source_port, host, port)
        return str(nat_type)

    return _guarded(family, source_ip, wait, wait * 12, exchange) or UNKNOWN_NAT


def _probe_one(server: str, source_ip: str, wait: float) -> StunResult:
    mapped = _binding_one(server, wait, source_ip)
    if mapped is None:
        return StunResult(server, stun.Blocked, None, None)
    return StunResult(server, _nat_type(server, source_ip, wait), mapped[0], mapped[1])


async def probe(
    servers: list[str],
    *,
    source_ip: str = "0.0.0.0",  # noqa: S104 - a client socket on every interface
    wait: float = 2.0,
) -> StunResult | None:
    """Ask each server in turn (each request waits `wait` s for its answer); the first that
    answers wins. None when none answered."""
    for server in servers:
        result = await asyncio.to_thread(_probe_one, server, source_ip, wait)
        if result.external_ip:
            return result
    return None


async def binding(server: str, *, wait: float = 1.0) -> tuple[str, int] | None:
    """One STUN Binding request: the mapped address the server saw, or None (no answer)."""
    return await asyncio.to_thread(_binding_one, server, wait)


class _Alive(asyncio.DatagramProtocol):
    def __init__(self, transaction: bytes, answered: asyncio.Future[bool]) -> None:
        self._transaction = transaction
        self._answered = answered

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if data[8:20] == self._transaction and not self._answered.done():
            self._answered.set_result(True)

    def error_received(self, exc: Exception) -> None:
        if not self._answered.done():
            self._answered.set_result(False)


async def alive(host: str, port: int, *, wait: float = 0.3) -> bool:
    """One RFC 5389 Binding request, any answer counts: a fast liveness check for /healthz."""
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[bool] = loop.create_future()
    try:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Alive(transaction, answered), remote_addr=(host, port)
        )
    except OSError:
        return False
    try:
        transport.sendto(request)
        async with asyncio.timeout(wait):
            return await answered
    except TimeoutError:
        return False
    finally:
        transport.close()
