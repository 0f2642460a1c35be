"""coturn's `turns:` with the box's certificate: a real coturn on loopback, supervised the way
`appliance turn` runs it, verified against the CA, reloaded (SIGUSR2) when the files change,
stopped by SIGTERM, and its death ending the supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from appliance.adapters import certificates, stun_probe
from appliance.config import Settings
from appliance.services.turnserver import supervise
from tests.support import make_settings, stop_process
from tests.tls_support import client_context, handshake
from tests.turn_support import free_udp_tcp_port, start_appliance_turn, turn_overrides


def turn_settings(data_dir: Path, **turn: Any) -> Settings:
    return make_settings(
        data_dir,
        {
            "turn": {**turn_overrides(), "tls_port": free_udp_tcp_port(), **turn},
            "tls": {"check_interval": 0.05},
        },
    )


async def wait_stun(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    async with asyncio.timeout(20):
        while await stun_probe.binding(f"127.0.0.1:{port}", wait=0.2) is None:
            assert proc is None or proc.poll() is None, "turnserver exited during start-up"


async def turns_certificate(port: int, ca_pem: bytes, name: str = "127.0.0.1") -> x509.Certificate:
    """The certificate coturn's TLS listener shows, verified against `ca_pem`."""
    async with asyncio.timeout(20):
        while True:
            try:
                return await handshake(port, client_context(ca_pem), name)
            except (ConnectionError, ssl.SSLEOFError):
                await asyncio.sleep(0.05)  # TLS listener not up yet


@asynccontextmanager
async def supervised(
    settings: Settings,
) -> AsyncIterator[tuple[asyncio.Task[int], asyncio.Event, list[int]]]:
    stop = asyncio.Event()
    pids: list[int] = []
    task = asyncio.create_task(
        supervise(settings, stop=stop, on_started=lambda proc: pids.append(proc.pid))
    )
    try:
        await wait_stun(settings.config.turn.port)
        assert not task.done()
        yield task, stop, pids
    finally:
        stop.set()
        await task


@pytest.mark.timeout(60)
async def test_turns_uses_the_internal_certificate(tmp_path: Path) -> None:
    settings = turn_settings(tmp_path / "data")
    async with supervised(settings) as (task, stop, pids):
        ca_pem = (settings.data_dir / "tls" / "ca.pem").read_bytes()
        leaf = await turns_certificate(settings.config.turn.tls_port, ca_pem)
        served = (settings.data_dir / "tls" / "server.pem").read_bytes()
        assert leaf == x509.load_pem_x509_certificates(served)[0]
        await handshake(settings.config.turn.tls_port, client_context(ca_pem), "localhost")
        conf = (settings.data_dir / "turn" / "turnserver.conf").read_text()
        assert f"cert={settings.data_dir / 'tls' / 'server.pem'}" in conf
        assert f"tls-listening-port={settings.config.turn.tls_port}" in conf
        stop.set()
        assert await task == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)  # coturn went with it


@pytest.mark.timeout(90)
async def test_turns_reloads_changed_files(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca_key, ca_pem = certificates.create_ca("Certbot stand-in", now=now)
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"

    def renew(name: str) -> None:
        key_pem, cert_pem = certificates.issue_server_cert(
            ca_key, ca_pem, ["127.0.0.1", name], now=now
        )
        certificates.write_pem(key, key_pem, private=True)
        certificates.write_pem(cert, cert_pem, private=False)

    renew("first.test")
    settings = turn_settings(tmp_path / "data", cert_file=str(cert), key_file=str(key))
    port = settings.config.turn.tls_port
    async with supervised(settings):
        first = await turns_certificate(port, ca_pem, "first.test")
        renew("second.test")
        # coturn reloads on SIGUSR2 in its own time: look until the new certificate shows.
        async with asyncio.timeout(30):
            while (await turns_certificate(port, ca_pem)).serial_number == first.serial_number:
                await asyncio.sleep(0.05)
        await turns_certificate(port, ca_pem, "second.test")
        await wait_stun(settings.config.turn.port)  # the same coturn still relays


@pytest.mark.timeout(60)
async def test_supervisor_ends_when_coturn_dies(tmp_path: Path) -> None:
    settings = turn_settings(tmp_path / "data")
    async with supervised(settings) as (task, _stop, pids):
        os.kill(pids[0], signal.SIGKILL)
        async with asyncio.timeout(10):
            code = await task
        assert code != 0


@pytest.mark.timeout(60)
async def test_appliance_turn_stops_on_sigterm(tmp_path: Path) -> None:
    settings = turn_settings(tmp_path / "data")
    proc = start_appliance_turn(settings)
    try:
        await wait_stun(settings.config.turn.port, proc)
        ca_pem = (settings.data_dir / "tls" / "ca.pem").read_bytes()
        await turns_certificate(settings.config.turn.tls_port, ca_pem)
        pid = int((settings.data_dir / "turn" / "turnserver.pid").read_text().strip())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        stop_process(proc)
