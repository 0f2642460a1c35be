"""The `appliance` command: init, user add, up under supervisord, the rendered systemd units."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from appliance.supervision.render import systemd_units
from appliance.supervision.services import SERVICES
from tests.turn_support import turn_overrides

ROOT = Path(__file__).resolve().parent.parent


def appliance(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_help_everywhere() -> None:
    for args in ([], ["init"], ["up"], ["web"], ["user"], ["user", "add"], ["units"]):
        result = appliance(*args, "--help")
        assert result.returncode == 0, args
        assert "usage: appliance" in result.stdout


def test_init_creates_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = appliance("--data-dir", str(data), "init")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("appliance.toml", "appliance.db"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    # Secrets are never printed.
    secret_line = next(
        line
        for line in (data / "appliance.toml").read_text().splitlines()
        if line.startswith("jwt_secret")
    )
    secret = secret_line.split('"')[1]
    assert secret not in result.stdout + result.stderr


def test_user_add_reads_password_from_stdin(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = appliance("--data-dir", data, "user", "add", "alice", "--admin", stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    assert "added user alice" in added.stdout
    duplicate = appliance("--data-dir", data, "user", "add", "ALICE", stdin="s3cret-pass\n")
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    short = appliance("--data-dir", data, "user", "add", "bob", stdin="short\n")
    assert short.returncode == 1
    assert "at least 8" in short.stderr
    bad_name = appliance("--data-dir", data, "user", "add", "bad name!", stdin="long-enough\n")
    assert bad_name.returncode == 1


def test_config_error_names_key(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    assert appliance("--data-dir", data, "init").returncode == 0
    result = appliance("--data-dir", data, "init", env={"APPLIANCE_WEB__PORT": "http"})
    assert result.returncode == 2
    assert "web.port" in result.stderr


def test_up_runs_services_under_supervisord_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, https_port = free_port(), free_port()
    data = tmp_path / "data"
    turn = turn_overrides(allow_loopback_peers=False)
    env = {
        **os.environ,
        "APPLIANCE_WEB__HOST": "127.0.0.1",
        "APPLIANCE_WEB__PORT": str(port),
        "APPLIANCE_WEB__HTTPS_PORT": str(https_port),
        "APPLIANCE_TURN__TLS_PORT": str(free_port()),
        "APPLIANCE_TURN__PORT": str(turn["port"]),
        "APPLIANCE_TURN__LISTEN_IPS": '["127.0.0.1"]',
        "APPLIANCE_TURN__RELAY_IP": "127.0.0.1",
        "APPLIANCE_TURN__MIN_PORT": str(turn["min_port"]),
        "APPLIANCE_TURN__MAX_PORT": str(turn["max_port"]),
        "APPLIANCE_STORAGE__ADDRESS": f"127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--data-dir", str(data), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert any(f"Open http://localhost:{port}/" in line for line in lines), lines
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != "ok":
            with contextlib.suppress(httpx.TransportError):
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()["status"]
            if status != "ok":
                time.sleep(0.1)
        assert status == "ok", "web, store and turn did not all come up under supervisord"
        # The same app over HTTPS, with a certificate from the box's own CA.
        ca = ssl.create_default_context(cafile=str(data / "tls" / "ca.pem"))
        secure = httpx.get(f"https://localhost:{https_port}/healthz", verify=ca, timeout=5)
        assert secure.json()["status"] == "ok"
        conf = (data / "run" / "supervisord.conf").read_text()
        assert 'environment=MALLOC_MMAP_THRESHOLD_="4194304"' in conf
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError("web still answering after Ctrl-C")
        except httpx.TransportError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_systemd_units_match_the_declaration() -> None:
    result = appliance("units", "--output", str(ROOT / "systemd"), "--check")
    assert result.returncode == 0, result.stderr
    units = systemd_units()
    for spec in SERVICES:
        unit = units[f"appliance-{spec.name}.service"]
        assert f" {' '.join(spec.command)}\n" in unit
        assert "WantedBy=appliance.target" in unit


def test_units_check_detects_drift(tmp_path: Path) -> None:
    assert appliance("units", "--output", str(tmp_path)).returncode == 0
    (tmp_path / "appliance-web.service").write_text("changed")
    assert appliance("units", "--output", str(tmp_path), "--check").returncode == 1


def test_user_add_prompts_twice_on_a_terminal(tmp_path: Path) -> None:
    import pty
    import select

    data = str(tmp_path / "data")
    assert appliance("--data-dir", data, "init").returncode == 0

    def run(first: str, second: str) -> tuple[int, str]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its controlling terminal
            os.execv(  # noqa: S606
                sys.executable,
                [sys.executable, "-m", "appliance", "--data-dir", data, "user", "add", "carol"],
            )
        output = b""
        answers = [first, second]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if chunk.rstrip().endswith(b":") and answers:  # a prompt: answer it
                os.write(fd, answers.pop(0).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")

    code, out = run("first-password", "other-password")
    assert code == 1 and "differ" in out
    assert out.count("Password") == 2
    code, out = run("same-password", "same-password")
    assert code == 0, out
    assert "added user carol" in out
    assert "same-password" not in out  # not echoed
