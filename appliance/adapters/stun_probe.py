"""STUN probe (pystun3): the box's address as a STUN server sees it, and the NAT type.

Only the servers given are asked; with none configured nothing is sent anywhere.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import stun


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


def _probe_one(server: str, source_ip: str, timeout: float) -> StunResult:
    host, port = parse_server(server)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind((source_ip, 0))
        source_port = sock.getsockname()[1]
        nat_type, info = stun.get_nat_type(sock, source_ip, source_port, host, port)
    return StunResult(
        server=server,
        nat_type=str(nat_type),
        external_ip=info.get("ExternalIP"),
        external_port=info.get("ExternalPort"),
    )


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


def _binding_one(server: str, timeout: float) -> tuple[str, int] | None:
    host, port = parse_server(server)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        source_ip = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if not host.startswith("127.") and host != "::1":
            source_ip = "::" if family == socket.AF_INET6 else "0.0.0.0"  # noqa: S104
        sock.bind((source_ip, 0))
        answer = stun.stun_test(sock, host, port, source_ip, sock.getsockname()[1])
    if not answer.get("Resp"):
        return None
    return str(answer["ExternalIP"]), int(answer["ExternalPort"])


async def binding(server: str, *, wait: float = 1.0) -> tuple[str, int] | None:
    """One STUN Binding request: the mapped address the server saw, or None (no answer)."""
    return await asyncio.to_thread(_binding_one, server, wait)
