"""`appliance doctor` and `GET /api/admin/doctor`.

A whole box runs once for the module under supervisord (`appliance up`: web, store, coturn and
the recorder, all on loopback), with an SNTP server of the test's own. The doctor runs as the
real command in a subprocess; each test breaks one thing on purpose (a changed copy of the config,
a stopped service, a lowered limit), checks that line and the exit status, and mends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomlkit

from appliance.adapters import certificates
from appliance.config import parse_config
from appliance.doctor import clock
from appliance.doctor.model import Check, Report, Status
from appliance.doctor.report import as_json, as_table
from appliance.errors import ConfigError
from appliance.storage.database import load_migrations, migrate
from appliance.supervision.services import SERVICES
from tests.support import make_settings, running_server
from tests.test_cli import free_port
from tests.turn_support import running_turn, turn_overrides

NAMES = [
    "database",
    "migrations",
    "wal",
    "store",
    "turn",
    "stun",
    "certificate",
    "disk",
    "fd_limit",
    "clock",
    "services",
    "recorder",
]


# --- a tiny SNTP server ---------------------------------------------------------------------


class FakeNtp:
    """Answers every SNTP request on 127.0.0.1 with the wall clock plus `offset` seconds."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 48:
                continue
            received = clock.to_ntp(time.time() + self.offset)
            origin = data[40:48]
            # version 4, mode 4 (server), stratum 2; root delay, dispersion, reference id
            head = struct.pack("!BBbb", (4 << 3) | 4, 2, 6, -20) + bytes(12)
            answer = head + bytes(8) + origin + struct.pack("!II", *received)
            answer += struct.pack("!II", *clock.to_ntp(time.time() + self.offset))
            self.sock.sendto(answer, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# --- the box --------------------------------------------------------------------------------


@dataclass
class Box:
    data_dir: Path
    config_path: Path
    web_url: str
    proc: subprocess.Popen[str]
    ntp: FakeNtp

    def config(self) -> tomlkit.TOMLDocument:
        return tomlkit.parse(self.config_path.read_text())

    def variant(self, folder: Path, changes: dict[str, dict[str, Any]]) -> Path:
        """A copy of the box's config with some keys changed, for one doctor run."""
        doc = self.config()
        for section, values in changes.items():
            table = doc.setdefault(section, tomlkit.table())
            for key, value in values.items():
                table[key] = value
        path = folder / "variant.toml"
        path.write_text(tomlkit.dumps(doc))
        path.chmod(0o600)
        return path

    def supervisorctl(self, *args: str) -> None:
        conf = self.data_dir / "run" / "supervisord.conf"
        beside = Path(sys.executable).parent / "supervisorctl"
        subprocess.run(
            [str(beside), "-c", str(conf), *args], capture_output=True, timeout=30, check=True
        )

    def health(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.TransportError, ValueError):
            body: dict[str, Any] = httpx.get(f"{self.web_url}/healthz", timeout=2).json()
            return body
        return {}

    def wait_health(self, service: str, state: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health().get("services", {}).get(service, {}).get("state") == state:
                return
            time.sleep(0.1)
        raise AssertionError(f"{service} never became {state}: {self.health()}")

    def wait_all_up(self, timeout: float = 45) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health().get("status") == "ok":
                return
            time.sleep(0.1)
        raise AssertionError(f"the box did not come up: {self.health()}")

    @contextlib.contextmanager
    def stopped(self, service: str) -> Iterator[None]:
        self.supervisorctl("stop", service)
        try:
            yield
        finally:
            self.supervisorctl("start", service)
            self.wait_all_up()


def doctor(
    data_dir: Path,
    config: Path | None = None,
    *extra: str,
    preexec: Any = None,
    json_out: bool = True,
) -> tuple[int, Report, str]:
    args = [sys.executable, "-m", "appliance", "--data-dir", str(data_dir)]
    if config is not None:
        args += ["--config", str(config)]
    args += ["doctor", *(["--json"] if json_out else []), *extra]
    done = subprocess.run(  # the real command, so the exit status is the real one
        args, capture_output=True, text=True, timeout=60, check=False, preexec_fn=preexec
    )
    if not json_out:
        return done.returncode, Report(()), done.stdout
    assert done.stdout.strip(), done.stderr
    body = json.loads(done.stdout)
    checks = tuple(
        Check(c["name"], Status(c["status"]), c["summary"], c["fix"]) for c in body["checks"]
    )
    report = Report(checks)
    assert body["ok"] == report.ok
    return done.returncode, report, done.stdout + done.stderr


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    data = tmp_path_factory.mktemp("box") / "data"
    ntp = FakeNtp()
    web_port, https_port = free_port(), free_port()
    turn = turn_overrides(allow_loopback_peers=False)
    turn.update(tls_port=free_port(), stun_servers=[f"127.0.0.1:{turn['port']}"], stun_timeout=0.3)
    settings = make_settings(
        data,
        {
            "web": {"host": "127.0.0.1", "port": web_port, "https_port": https_port},
            "turn": turn,
            "storage": {"address": f"127.0.0.1:{free_port()}"},
            "recording": {"enabled": True},
            "doctor": {
                "ntp_server": ntp.address,
                "min_free_mb": 1,
                "warn_free_mb": 1,
                "min_open_files": 256,
                "check_timeout": 20,
            },
        },
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--data-dir", str(data), "up"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    running = Box(data, settings.config_path, f"http://127.0.0.1:{web_port}", proc, ntp)
    try:
        running.wait_all_up()
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        ntp.close()


def assert_only(report: Report, name: str, status: Status, *others: str) -> Check:
    """`name` has `status`; every line but `name` and `others` is ok."""
    line = report.by_name(name)
    assert line.status is status, line
    for check in report.checks:
        if check.name not in (name, *others):
            assert check.status is Status.OK, (check, report)
    if status in (Status.WARN, Status.FAIL):
        assert line.fix
    return line


# --- healthy, then broken one thing at a time -----------------------------------------------


@pytest.mark.timeout(120)
def test_healthy_box_every_line_ok(box: Box) -> None:
    code, report, output = doctor(box.data_dir)
    assert [c.name for c in report.checks] == NAMES
    for check in report.checks:
        assert check.status is Status.OK, check
        assert check.fix == ""
    assert code == 0
    assert "quick" not in report.by_name("database").summary  # a small database: full check
    assert "refused (403)" in report.by_name("turn").summary
    assert "supervisord" in report.by_name("services").summary
    assert "public address 127.0.0.1:" in report.by_name("stun").summary
    # No secret in the report.
    config = box.config()
    for secret in (
        config["turn"]["secret"],
        config["storage"]["secret_key"],
        config["auth"]["jwt_secret"],
    ):
        assert str(secret) not in output
    # The table: one aligned line per check and a verdict, no colour when not on a terminal.
    code, _, table = doctor(box.data_dir, json_out=False)
    assert code == 0
    lines = table.splitlines()
    assert "\033[" not in table
    assert lines[-1] == "Everything checked is fine."
    rows = [line for line in lines if line.startswith(("OK ", "WARN ", "FAIL ", "SKIP "))]
    assert [row.split()[1] for row in rows] == NAMES
    columns = {row.index(row.split()[2]) for row in rows}
    assert len(columns) == 1  # summaries start in one column


@pytest.mark.timeout(120)
def test_corrupt_database(box: Box, tmp_path: Path) -> None:
    copy = tmp_path / "corrupt.db"
    with (
        sqlite3.connect(box.data_dir / "appliance.db") as source,
        sqlite3.connect(copy) as target,
    ):
        source.backup(target)
    source.close()
    target.close()
    with copy.open("r+b") as handle:  # garbage over every page but the header page
        size = copy.stat().st_size
        handle.seek(4096)
        handle.write(bytes((i * 37 + 11) % 251 for i in range(size - 4096)))
    config = box.variant(tmp_path, {"database": {"path": str(copy)}})
    code, report, _ = doctor(box.data_dir, config)
    line = assert_only(report, "database", Status.FAIL, "migrations", "wal")
    assert "malformed" in line.summary or "damage" in line.summary
    assert report.by_name("migrations").status is Status.SKIP
    assert "restore" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_database_behind_by_a_migration(box: Box, tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    latest = len(load_migrations())

    async def build() -> None:
        import aiosqlite

        async with aiosqlite.connect(old, isolation_level=None) as conn:
            await migrate(conn, target=latest - 1)

    asyncio.run(build())
    config = box.variant(tmp_path, {"database": {"path": str(old)}})
    code, report, _ = doctor(box.data_dir, config)
    line = assert_only(report, "migrations", Status.FAIL, "wal")
    assert f"version {latest - 1}, this code needs {latest}" in line.summary
    assert "Restart the web service" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_store_stopped(box: Box) -> None:
    with box.stopped("store"):
        code, report, _ = doctor(box.data_dir)
        line = assert_only(report, "store", Status.FAIL, "services")
        assert "does not answer" in line.summary
        services = report.by_name("services")
        assert services.status is Status.FAIL and "store STOPPED" in services.summary
        assert code == 1


@pytest.mark.timeout(120)
def test_wrong_store_credentials(box: Box, tmp_path: Path) -> None:
    config = box.variant(tmp_path, {"storage": {"secret_key": "not-the-stores-secret-key"}})
    code, report, output = doctor(box.data_dir, config)
    line = assert_only(report, "store", Status.FAIL)
    assert "refused our signed request (HTTP 403" in line.summary
    assert "secret_key" in line.fix
    assert "not-the-stores-secret-key" not in output
    assert code == 1


@pytest.mark.timeout(120)
def test_coturn_stopped(box: Box) -> None:
    with box.stopped("turn"):
        code, report, _ = doctor(box.data_dir)
        line = assert_only(report, "turn", Status.FAIL, "stun", "services")
        assert "does not answer" in line.summary
        assert report.by_name("stun").status is Status.WARN  # the STUN server was coturn too
        assert code == 1


@pytest.mark.timeout(120)
async def test_turn_with_loopback_peers_allowed_warns(box: Box, tmp_path: Path) -> None:
    """A second coturn rendered with the test-only switch: the guard is off."""
    secret = str(box.config()["turn"]["secret"])
    open_turn = turn_overrides(allow_loopback_peers=True)
    settings = make_settings(tmp_path / "open", {"turn": {**open_turn, "secret": secret}})
    async with running_turn(settings):
        changes = {"turn": {"port": open_turn["port"], "allow_loopback_peers": True}}
        config = box.variant(tmp_path, changes)
        code, report, _ = await asyncio.to_thread(doctor, box.data_dir, config)
        # The config says the guard is on, but this coturn relays to loopback.
        changes["turn"]["allow_loopback_peers"] = False
        unguarded = box.variant(tmp_path, changes)
        bad_code, bad_report, _ = await asyncio.to_thread(doctor, box.data_dir, unguarded)
    line = assert_only(report, "turn", Status.WARN)
    assert "SSRF guard is OFF" in line.summary
    assert "allow_loopback_peers = false" in line.fix
    assert code == 0  # a warning is not a failure
    line = assert_only(bad_report, "turn", Status.FAIL)
    assert "GRANTED" in line.summary
    assert bad_code == 1


@pytest.mark.timeout(120)
def test_turn_secret_differs_from_coturns(box: Box, tmp_path: Path) -> None:
    config = box.variant(tmp_path, {"turn": {"secret": "a-secret-coturn-does-not-know"}})
    code, report, output = doctor(box.data_dir, config)
    line = assert_only(report, "turn", Status.FAIL)
    assert "refused fresh credentials (401" in line.summary
    assert "a-secret-coturn-does-not-know" not in output
    assert code == 1


def _certificate_files(folder: Path, names: list[str], *, start: datetime, days: int) -> Path:
    ca_key, ca_pem = certificates.create_ca("Doctor test CA", now=start)
    key, chain = certificates.issue_server_cert(ca_key, ca_pem, names, now=start, days=days)
    (folder / "cert.pem").write_bytes(chain)
    (folder / "key.pem").write_bytes(key)
    return folder


@pytest.mark.timeout(120)
def test_expired_certificate(box: Box, tmp_path: Path) -> None:
    start = datetime.now(UTC) - timedelta(days=40)
    files = _certificate_files(tmp_path, ["localhost", "127.0.0.1"], start=start, days=30)
    tls = {
        "mode": "files",
        "cert_file": str(files / "cert.pem"),
        "key_file": str(files / "key.pem"),
    }
    code, report, _ = doctor(box.data_dir, box.variant(tmp_path, {"tls": tls}))
    line = assert_only(report, "certificate", Status.FAIL)
    assert line.summary.startswith("expired on ")
    assert "Renew" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_certificate_for_another_name(box: Box, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    files = _certificate_files(tmp_path, ["wrong.test", "127.0.0.1"], start=now, days=90)
    changes: dict[str, dict[str, Any]] = {
        "tls": {
            "mode": "files",
            "cert_file": str(files / "cert.pem"),
            "key_file": str(files / "key.pem"),
        },
        "web": {"public_origins": ["https://chat.test"]},
    }
    code, report, _ = doctor(box.data_dir, box.variant(tmp_path, changes))
    line = assert_only(report, "certificate", Status.FAIL)
    assert "does not cover chat.test (it covers wrong.test, 127.0.0.1)" in line.summary
    assert "chat.test" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_certificate_expiring_soon_warns(box: Box, tmp_path: Path) -> None:
    files = _certificate_files(tmp_path, ["127.0.0.1"], start=datetime.now(UTC), days=5)
    tls = {
        "mode": "files",
        "cert_file": str(files / "cert.pem"),
        "key_file": str(files / "key.pem"),
    }
    code, report, _ = doctor(box.data_dir, box.variant(tmp_path, {"tls": tls}))
    line = assert_only(report, "certificate", Status.WARN)
    assert "expires in 4 day(s)" in line.summary or "expires in 5 day(s)" in line.summary
    assert code == 0


@pytest.mark.timeout(120)
def test_low_disk(box: Box, tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(box.data_dir).free // (1024 * 1024)
    warn_only = box.variant(tmp_path, {"doctor": {"warn_free_mb": free_mb + 1000}})
    code, report, _ = doctor(box.data_dir, warn_only)
    assert_only(report, "disk", Status.WARN)
    assert code == 0
    full = box.variant(tmp_path, {"doctor": {"min_free_mb": free_mb + 1000}})
    code, report, _ = doctor(box.data_dir, full)
    line = assert_only(report, "disk", Status.FAIL)
    assert f"(below {free_mb + 1000} MB)" in line.summary
    assert "Free space" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_low_fd_limit_of_the_web_service(box: Box) -> None:
    """The doctor reads the limit of the running web service (found through supervisord)."""
    code, report, _ = doctor(box.data_dir)
    summary = report.by_name("fd_limit").summary
    assert "the web service (pid " in summary
    pid = int(summary.split("(pid ")[1].split(")")[0])
    before = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (200, before[1]))
    try:
        code, report, _ = doctor(box.data_dir)
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, before)
    line = assert_only(report, "fd_limit", Status.WARN)
    assert ": 200 (below 256" in line.summary
    assert "LimitNOFILE" in line.fix
    assert code == 0


@pytest.mark.timeout(120)
def test_low_fd_limit_of_the_doctor_itself(tmp_path: Path) -> None:
    """Without a supervisor to ask, the doctor reports the limit it was started with."""
    settings = make_settings(tmp_path / "d", {"doctor": {"check_timeout": 5}})

    def lower() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))

    _, report, _ = doctor(settings.data_dir, None, preexec=lower)
    line = report.by_name("fd_limit")
    assert line.status is Status.WARN
    assert "open-file limit of this process: 300 (below 4096" in line.summary
    assert report.by_name("services").status is Status.SKIP


@pytest.mark.timeout(120)
def test_clock_ten_minutes_off(box: Box, tmp_path: Path) -> None:
    wrong = FakeNtp(offset=600.0)
    try:
        config = box.variant(tmp_path, {"doctor": {"ntp_server": wrong.address}})
        code, report, _ = doctor(box.data_dir, config)
    finally:
        wrong.close()
    line = assert_only(report, "clock", Status.FAIL)
    assert float(line.summary.split()[0]) == pytest.approx(600, abs=0.5)
    assert "s behind 127.0.0.1:" in line.summary
    assert "timedatectl" in line.fix
    assert code == 1


@pytest.mark.timeout(120)
def test_ntp_server_silent_warns(box: Box, tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never answers
    try:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        code, report, _ = doctor(
            box.data_dir, box.variant(tmp_path, {"doctor": {"ntp_server": address}})
        )
    finally:
        silent.close()
    line = assert_only(report, "clock", Status.WARN)
    assert "no usable answer" in line.summary
    assert code == 0


@pytest.mark.timeout(120)
def test_recorder_down_while_recording_enabled(box: Box) -> None:
    with box.stopped("recorder"):
        box.wait_health("recorder", "down")
        code, report, _ = doctor(box.data_dir)
        line = assert_only(report, "recorder", Status.FAIL, "services")
        assert "recorder is not connected" in line.summary
        assert "recorder STOPPED" in report.by_name("services").summary
        assert code == 1


@pytest.mark.timeout(120)
def test_recording_off_skips_recorder(box: Box, tmp_path: Path) -> None:
    config = box.variant(tmp_path, {"recording": {"enabled": False}})
    code, report, _ = doctor(box.data_dir, config)
    assert_only(report, "recorder", Status.SKIP)
    assert code == 0


def test_unreadable_config_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "--data-dir", str(tmp_path), "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "no configuration" in done.stderr
    assert not (tmp_path / "appliance.db").exists()  # the doctor creates nothing


# --- the endpoint ---------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_endpoint_admins_only(tmp_path: Path) -> None:
    overrides = {"doctor": {"check_timeout": 5}, "turn": turn_overrides()}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("root", admin=True)
        await server.add_user("bob")
        admin, user = await server.token("root"), await server.token("bob")
        response = await server.http.get(
            "/api/admin/doctor", headers={"Authorization": f"Bearer {admin}"}
        )
        assert response.status_code == 200
        body = response.json()
        assert [c["name"] for c in body["checks"]] == NAMES
        for check in body["checks"]:
            assert set(check) == {"name", "status", "summary", "fix"}
            assert check["status"] in ("ok", "warn", "fail", "skip")
            assert (check["fix"] == "") == (check["status"] in ("ok", "skip"))
        by_name = {c["name"]: c for c in body["checks"]}
        assert by_name["database"]["status"] == "ok"
        assert by_name["store"]["status"] == "fail"  # no store runs beside this server
        assert by_name["turn"]["status"] == "fail"
        assert by_name["services"]["status"] == "skip"
        assert by_name["recorder"]["status"] == "skip"
        assert "this process" not in by_name["fd_limit"]["summary"]
        assert body["ok"] is False
        forbidden = await server.http.get(
            "/api/admin/doctor", headers={"Authorization": f"Bearer {user}"}
        )
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        missing = await server.http.get("/api/admin/doctor")
        assert missing.status_code == 401
        bad = await server.http.get(
            "/api/admin/doctor", headers={"Authorization": f"Bearer {admin}x"}
        )
        assert bad.status_code == 401
        wrong_method = await server.http.post(
            "/api/admin/doctor", headers={"Authorization": f"Bearer {admin}"}, json={}
        )
        assert wrong_method.status_code == 405
        # Two at once share one run.
        both = await asyncio.gather(
            *(
                server.http.get("/api/admin/doctor", headers={"Authorization": f"Bearer {admin}"})
                for _ in range(2)
            )
        )
        assert [r.status_code for r in both] == [200, 200]


# --- units ----------------------------------------------------------------------------------


def test_sntp_answer_parsing() -> None:
    sent = clock.to_ntp(1_000_000.0)
    reply = bytearray(48)
    reply[0] = (4 << 3) | 4
    reply[1] = 2
    reply[24:32] = struct.pack("!II", *sent)
    reply[32:40] = struct.pack("!II", *clock.to_ntp(1_000_010.5))
    reply[40:48] = struct.pack("!II", *clock.to_ntp(1_000_010.5))
    answer = clock.read_answer(bytes(reply), sent, 1_000_000.0, 1_000_001.0)
    assert answer.offset == pytest.approx(10.0, abs=1e-6)
    assert answer.delay == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(clock.NtpError, match="another request"):
        clock.read_answer(bytes(reply), clock.to_ntp(5.0), 0, 1)
    kiss = bytearray(reply)
    kiss[1] = 0
    with pytest.raises(clock.NtpError, match="kiss-of-death"):
        clock.read_answer(bytes(kiss), sent, 0, 1)
    with pytest.raises(clock.NtpError, match="short"):
        clock.read_answer(bytes(10), sent, 0, 1)
    assert clock.parse_server("[::1]:1234") == ("::1", 1234)
    assert clock.parse_server("ntp.example") == ("ntp.example", 123)
    with pytest.raises(ValueError):
        clock.parse_server("host:0")


def test_report_rendering() -> None:
    report = Report(
        (
            Check("database", Status.OK, "fine"),
            Check("disk", Status.FAIL, "1 MB free", "Free space."),
            Check("stun", Status.SKIP, "none configured"),
        )
    )
    assert report.exit_status == 1
    table = as_table(report, colour=True)
    assert "\033[31;1mFAIL\033[0m  disk      1 MB free" in table
    assert "fix: Free space." in table
    assert table.rstrip().endswith("1 check(s) failed, 0 warning(s).")
    body = json.loads(as_json(report))
    assert body["ok"] is False
    assert body["checks"][0] == {"name": "database", "status": "ok", "summary": "fine", "fix": ""}


def test_doctor_keys_checked() -> None:
    config = parse_config({}).doctor
    assert config.ntp_server == "" and config.check_timeout == 10.0
    assert parse_config({"doctor": {"ntp_server": " [::1]:123 "}}).doctor.ntp_server == "[::1]:123"
    for bad in ({"ntp_server": "ntp.example/x"}, {"check_timeout": 0}, {"min_open_files": 1}):
        with pytest.raises(ConfigError, match=r"doctor\."):
            parse_config({"doctor": bad})


async def test_services_under_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The systemd path, with a stand-in `systemctl` (no systemd runs in the test machine)."""
    from appliance.doctor import services
    from appliance.doctor.model import DoctorContext

    bin_dir, run_dir = tmp_path / "bin", tmp_path / "systemd"
    bin_dir.mkdir()
    run_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *LoadState*) echo loaded ;;\n"
        "  *MainPID*) echo 4242 ;;\n"
        '  "is-active appliance-store.service") echo failed ;;\n'
        "  is-active*) echo active ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("APPLIANCE_SUPERVISOR", raising=False)
    monkeypatch.delenv("APPLIANCE_SUPERVISOR_SOCKET", raising=False)
    monkeypatch.setattr(services, "SYSTEMD_DIR", run_dir)
    settings = make_settings(tmp_path / "d")
    context = DoctorContext(settings, "http://127.0.0.1:1")
    [line] = await services.check_services(context)
    await context.close()
    assert line.status is Status.FAIL
    states = [f"{s.name} {'failed' if s.name == 'store' else 'active'}" for s in SERVICES]
    assert line.summary == "systemd: " + ", ".join(states)
    assert "systemctl start appliance-store" in line.fix
    assert "journalctl -u appliance-store" in line.fix
    context = DoctorContext(settings, "http://127.0.0.1:1")
    assert await services.web_pid(context) == 4242
    await context.close()
