"""The small process beside coturn (`appliance.adapters.coturn_process`): which certificate
changes it passes on, how it cuts coturn's output into log lines, and that `appliance turn`
becomes it (without the config model loaded) once the config is rendered."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.adapters import certificates
from appliance.adapters.coturn_process import MAX_LINE, CertificateWatch, _Lines, command, run
from tests.support import make_settings, stop_process
from tests.test_tls_turn import wait_stun
from tests.turn_support import free_udp_tcp_port, start_appliance_turn, turn_overrides


def _pair(ca: tuple[bytes, bytes], name: str) -> tuple[bytes, bytes]:
    """(key, chain) PEM of a server certificate for `name`."""
    return certificates.issue_server_cert(*ca, [name], now=datetime.now(UTC))


@pytest.mark.timeout(30)
def test_certificate_watch_passes_on_only_pairs_that_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ca = certificates.create_ca("Watch test", now=datetime.now(UTC))
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    first_key, first_cert = _pair(ca, "first.test")
    certificates.write_pem(key, first_key, private=True)
    certificates.write_pem(cert, first_cert, private=False)
    watch = CertificateWatch(cert, key)
    assert not watch.changed()  # what coturn started with
    second_key, second_cert = _pair(ca, "second.test")
    certificates.write_pem(cert, second_cert, private=False)  # certbot between its two writes
    with caplog.at_level(logging.WARNING):
        assert not watch.changed()
    assert "keeping the current TLS certificate" in caplog.text
    certificates.write_pem(key, second_key, private=True)
    assert watch.changed()
    assert not watch.changed()  # once per change
    key.unlink()
    assert not watch.changed()  # unreadable: nothing to reload


def test_output_lines(caplog: pytest.LogCaptureFixture) -> None:
    lines = _Lines()
    with caplog.at_level(logging.INFO, logger="coturn"):
        lines.feed(b"0: : Listener opened on : 127.0.0.1:3478\n0: : ERROR: can")
        lines.feed(b"not bind\n" + b"x" * (MAX_LINE + 10))
        lines.feed(b"y" * 10 + b"\n12: (77): last words")
        lines.feed(b"")
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "coturn"]
    assert records == [
        (logging.INFO, "Listener opened on : 127.0.0.1:3478"),
        (logging.ERROR, "ERROR: cannot bind"),
        (logging.INFO, "last words"),  # the over-long line was dropped, up to its end
    ]


@pytest.mark.timeout(30)
def test_run_returns_the_exit_status_and_logs_the_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stop_r, stop_w = os.pipe()
    try:
        script = "print('0: : hello', flush=True); raise SystemExit(3)"
        with caplog.at_level(logging.INFO):
            assert run([sys.executable, "-c", script], stop_fd=stop_r) == 3
    finally:
        os.close(stop_r)
        os.close(stop_w)
    assert ("coturn", "hello") in [(r.name, r.getMessage()) for r in caplog.records]


def test_command_line() -> None:
    line = command(
        ["/usr/bin/turnserver", "-c", "/d/turn/turnserver.conf"],
        certificate=(Path("/d/tls/server.pem"), Path("/d/tls/server-key.pem")),
        interval=60.0,
        log_format="json",
        log_level="info",
        python="/venv/bin/python",
    )
    assert line[:3] == ["/venv/bin/python", "-m", "appliance.adapters.coturn_process"]
    assert line[line.index("--") + 1 :] == ["/usr/bin/turnserver", "-c", "/d/turn/turnserver.conf"]
    assert line[line.index("--cert") + 1] == "/d/tls/server.pem"


@pytest.mark.timeout(60)
async def test_appliance_turn_becomes_the_small_watcher(tmp_path: Path) -> None:
    """After rendering, `appliance turn` is the stdlib-only watcher: no pydantic in its memory."""
    settings = make_settings(
        tmp_path / "data", {"turn": {**turn_overrides(), "tls_port": free_udp_tcp_port()}}
    )
    proc = start_appliance_turn(settings)
    try:
        await wait_stun(settings.config.turn.port, proc)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0")
        assert cmdline[1:3] == ["-m", "appliance.adapters.coturn_process"]
        assert "--cert" in cmdline  # the web serves HTTPS: coturn got the certificate
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "pydantic_core" not in maps and "cryptography" not in maps
    finally:
        stop_process(proc)
