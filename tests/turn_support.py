"""A real coturn for tests, started the way `appliance turn` starts it, on loopback only."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from appliance.adapters import stun_probe
from appliance.config import Settings
from appliance.services.turnserver import prepare
from tests.support import stop_process


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def turn_overrides(*, allow_loopback_peers: bool = True) -> dict[str, Any]:
    """[turn] keys for a coturn on loopback with its own ports."""
    base = random.randrange(20000, 30000, 50)
    return {
        "port": free_udp_tcp_port(),
        "listen_ips": ["127.0.0.1"],
        "relay_ip": "127.0.0.1",
        "public_host": "127.0.0.1",
        "min_port": base,
        "max_port": base + 49,
        "allow_loopback_peers": allow_loopback_peers,
    }


def start_appliance_turn(settings: Settings) -> subprocess.Popen[bytes]:
    """`appliance turn` as its service runs it (certificate, config, then the watcher)."""
    return subprocess.Popen(
        [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir), "turn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@asynccontextmanager
async def running_turn(settings: Settings) -> AsyncIterator[subprocess.Popen[bytes]]:
    argv = await prepare(settings)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = f"127.0.0.1:{settings.config.turn.port}"
    try:
        async with asyncio.timeout(20):
            while await stun_probe.binding(server, wait=0.2) is None:
                assert proc.poll() is None, "turnserver exited during start-up"
        yield proc
    finally:
        stop_process(proc)
