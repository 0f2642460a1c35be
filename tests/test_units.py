"""The rendered systemd units (verified and hardened) and the supervisord config of `appliance up`
(private control socket, the web's supervisor environment, coturn's output in a log file)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.supervision import logsplit
from appliance.supervision.render import (
    LOG_BACKUPS,
    LOG_MAX_BYTES,
    supervisor_socket,
    supervisord_conf,
    systemd_units,
)
from appliance.supervision.services import JOBS, SERVICES, by_name
from tests.turn_support import turn_overrides

SERVICE_UNITS = [f"appliance-{spec.name}.service" for spec in SERVICES]
EVERY_SERVICE = [
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "UMask=0027",
]


def directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def render_into_root(root: Path) -> list[str]:
    """The units in root/etc/systemd/system, with what `systemd-analyze verify --root` needs:
    the system's own units (sysinit.target and friends) and every ExecStart binary."""
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    names = []
    for name, text in systemd_units().items():
        (unit_dir / name).write_text(text)
        names.append(name)
        for value in directives(text).get("ExecStart", []):
            binary = root / shlex.split(value)[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\n")
            binary.chmod(0o755)
    return names


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    names = render_into_root(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    # The check above is not vacuous: verify warns about a bad value (with exit code 0, which is
    # why the test above also wants no output at all).
    names = render_into_root(tmp_path)
    web = tmp_path / "etc/systemd/system/appliance-web.service"
    web.write_text(web.read_text().replace("ProtectKernelLogs=yes", "ProtectKernelLogs=maybe"))
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "appliance-web.service:" in result.stderr
    assert "Failed to parse boolean value" in result.stderr


def test_every_service_is_hardened() -> None:
    units = systemd_units()
    for spec in SERVICES:
        found = directives(units[f"appliance-{spec.name}.service"])
        for line in EVERY_SERVICE:
            key, value = line.split("=", 1)
            assert value in found.get(key, []), (spec.name, line)
        families = found["RestrictAddressFamilies"][0].split()
        assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
        # Netlink only where the box's addresses are read (`ip addr`).
        assert ("AF_NETLINK" in families) == spec.reads_addresses, spec.name
        writable = found["ReadWritePaths"][0].split()
        assert "/var/lib/appliance" in writable
        assert ("/etc/appliance" in writable) == spec.rewrites_config, spec.name
        assert found["User"] == ["appliance"]
    web = directives(units["appliance-web.service"])
    assert web["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert web["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert "APPLIANCE_SUPERVISOR=systemd" in web["Environment"]
    for name in ("recorder", "store", "turn"):
        found = directives(units[f"appliance-{name}.service"])
        assert found["CapabilityBoundingSet"] == [""], name
        assert "AmbientCapabilities" not in found, name
    assert directives(units["appliance-turn.service"])["Conflicts"] == ["coturn.service"]
    recorder = directives(units["appliance-recorder.service"])
    assert recorder["After"] == ["network-online.target appliance-web.service"]
    assert recorder["ExecStart"][0].endswith(" recorder")


def test_reload_units_watch_the_config_and_restart_the_services() -> None:
    units = systemd_units()
    path = directives(units["appliance-reload.path"])
    assert path["PathChanged"] == ["/etc/appliance/appliance.toml"]
    assert path["Unit"] == ["appliance-reload.service"]
    assert "appliance-reload.path" in directives(units["appliance.target"])["Wants"][0]
    service = directives(units["appliance-reload.service"])
    assert service["Type"] == ["oneshot"]
    assert "User" not in service  # root: it chowns the file and talks to systemd
    assert service["CapabilityBoundingSet"] == ["CAP_CHOWN CAP_FOWNER"]
    command = service["ExecStart"][0]
    for unit in SERVICE_UNITS:
        assert unit in command
    assert "chown root:appliance" in command and "chmod 0640" in command


def test_backup_timer_and_its_oneshot_service() -> None:
    units = systemd_units()
    for job in JOBS:
        timer = directives(units[f"appliance-{job.name}.timer"])
        assert timer["OnCalendar"] == [job.on_calendar]
        assert timer["Persistent"] == ["true"]
        assert timer["Unit"] == [f"appliance-{job.name}.service"]
        assert timer["WantedBy"] == ["appliance.target"]  # enabled by scripts/install.sh
        assert timer["PartOf"] == ["appliance.target"]
        assert f"appliance-{job.name}.timer" in directives(units["appliance.target"])["Wants"][0]
        text = units[f"appliance-{job.name}.service"]
        service = directives(text)
        assert service["Type"] == ["oneshot"]
        assert "[Install]" not in text  # started by its timer only
        assert service["User"] == ["appliance"]
        assert service["CapabilityBoundingSet"] == [""]
        assert service["ReadWritePaths"] == ["/var/lib/appliance"]
        for line in EVERY_SERVICE:
            key, value = line.split("=", 1)
            assert value in service.get(key, []), (job.name, line)
    backup = directives(units["appliance-backup.service"])
    assert backup["ExecStart"][0].endswith(" backup --scheduled")
    assert backup["ExecStart"][0].startswith("/opt/appliance/venv/bin/appliance --data-dir")
    # supervisord has no timers: `appliance up` runs the services only.
    sections = conf_sections(supervisord_conf(["appliance"], Path("/run")))
    assert not [name for name in sections if "backup" in name]


def test_units_check_notices_a_stale_timer(tmp_path: Path) -> None:
    from appliance.cli import main

    assert main(["units", "--output", str(tmp_path)]) == 0
    assert main(["units", "--output", str(tmp_path), "--check"]) == 0
    (tmp_path / "appliance-old.timer").write_text("[Timer]\n")
    assert main(["units", "--output", str(tmp_path), "--check"]) == 1
    (tmp_path / "appliance-old.timer").unlink()
    (tmp_path / "appliance-backup.timer").unlink()
    assert main(["units", "--output", str(tmp_path), "--check"]) == 1


def exposure(unit_file: Path) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=unit_file.parent,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_security_exposure_is_low(tmp_path: Path) -> None:
    # docs/install.md has the figures: 8.5 ("EXPOSED") for every service before the hardening.
    for name, text in systemd_units().items():
        if name.endswith(".service"):
            (tmp_path / name).write_text(text)
            assert exposure(tmp_path / name) <= 2.0, name


# -- supervisord (`appliance up`) -------------------------------------------------------------


def conf_sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line and not line.startswith(";"):
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def test_supervisord_socket_is_private_and_web_knows_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sections = conf_sections(supervisord_conf(["appliance"], run))
    assert sections["unix_http_server"] == {"file": str(run / "supervisor.sock"), "chmod": "0700"}
    web_env = sections["program:web"]["environment"]
    assert 'APPLIANCE_SUPERVISOR="supervisord"' in web_env
    assert f'APPLIANCE_SUPERVISOR_SOCKET="{supervisor_socket(run)}"' in web_env
    assert 'MALLOC_MMAP_THRESHOLD_="4194304"' in web_env
    for name in ("recorder", "store", "turn"):
        assert "APPLIANCE_SUPERVISOR" not in sections[f"program:{name}"].get("environment", "")


def test_supervisord_sends_turn_output_to_a_rotated_log(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sections = conf_sections(supervisord_conf(["appliance"], run, python="/py"))
    turn = sections["program:turn"]
    assert turn["stdout_logfile"] == str(run / "turn.log")
    assert turn["stdout_logfile_maxbytes"] == str(LOG_MAX_BYTES)
    assert turn["stdout_logfile_backups"] == str(LOG_BACKUPS)
    assert turn["stderr_logfile"] == "/dev/stdout"
    assert turn["redirect_stderr"] == "false"
    assert turn["command"].startswith("/py -m appliance.supervision.logsplit --name turn")
    assert turn["command"].endswith("-- appliance turn")
    assert sections["program:web"]["stdout_logfile"] == "/dev/stdout"


def test_supervisord_values_escape_percent(tmp_path: Path) -> None:
    run = tmp_path / "100%"
    text = supervisord_conf(["appliance", "--data-dir", str(tmp_path / "100%")], run)
    assert "100%%" in text
    assert "100%/" not in text.replace("100%%", "")


def test_logsplit_sends_errors_to_the_console_and_everything_to_the_log() -> None:
    lines = [
        "0: : Listener address to use: 127.0.0.1",
        "0: : Black listing: 10.0.0.0-10.255.255.255",
        "socket: Protocol not supported",
        "0: : Cannot bind TLS/TCP listener socket to addr 127.0.0.1:3478",
        "0: : Trying to bind fd 11 to <127.0.0.1:3478>: errno=98",
        "0: : ERROR: cannot open certificate file",
        "appliance: turnserver not found: install Debian's coturn",
    ]
    script = "import sys\n" + "".join(
        f"print({line!r}, file=sys.{'stderr' if i % 2 else 'stdout'}, flush=True)\n"
        for i, line in enumerate(lines)
    )
    wrapper = [sys.executable, "-m", "appliance.supervision.logsplit", "--name", "turn"]
    result = subprocess.run(
        [*wrapper, "--log", "L", "--", sys.executable, "-c", script + "sys.exit(3)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout.splitlines() == lines  # the log: every line, in order
    console = result.stderr.splitlines()
    assert console[0] == "turn: started; its log is L (errors show here)"
    assert console[1:] == [f"turn: {line}" for line in lines[3:]]
    assert [logsplit.is_error(line.encode()) for line in lines] == [False] * 3 + [True] * 4


def run_turn_under_supervisord(tmp_path: Path, port: int) -> tuple[str, Path]:
    """`appliance up`'s supervisord with only the turn service; its console until coturn runs."""
    data = tmp_path / "data"
    run = data / "run"
    turn = turn_overrides(allow_loopback_peers=False)
    env = {
        **os.environ,
        "APPLIANCE_TURN__PORT": str(port),
        "APPLIANCE_TURN__LISTEN_IPS": '["127.0.0.1"]',
        "APPLIANCE_TURN__RELAY_IP": "127.0.0.1",
        "APPLIANCE_TURN__MIN_PORT": str(turn["min_port"]),
        "APPLIANCE_TURN__MAX_PORT": str(turn["max_port"]),
        "APPLIANCE_TURN__STUN_SERVERS": "[]",
    }
    init = [sys.executable, "-m", "appliance", "--data-dir", str(data)]
    subprocess.run([*init, "init"], env=env, check=True, capture_output=True, timeout=60)
    run.mkdir(mode=0o700)
    conf = run / "supervisord.conf"
    conf.write_text(supervisord_conf(init, run, [by_name("turn")]))
    supervisord = Path(sys.executable).parent / "supervisord"
    console_file = tmp_path / "console.txt"
    with console_file.open("ab") as console:
        proc = subprocess.Popen(
            [str(supervisord), "-n", "-c", str(conf)], env=env, stdout=console, stderr=console
        )
    log = run / "turn.log"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "SQLite DB connection success" in text or "Cannot bind" in text:
                break
            assert proc.poll() is None, console_file.read_text()
            time.sleep(0.1)
        mode = stat.S_IMODE(supervisor_socket(run).stat().st_mode)
        assert mode == 0o700, oct(mode)
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    return console_file.read_text(errors="replace"), log


@pytest.mark.timeout(120)
def test_up_keeps_coturn_banner_off_the_console(tmp_path: Path) -> None:
    port = turn_overrides()["port"]
    console, log = run_turn_under_supervisord(tmp_path, port)
    text = log.read_text(errors="replace")
    assert "Coturn" in text and "Black listing" in text  # the banner went to the log file
    assert "Black listing" not in console and "Coturn" not in console
    assert f"turn: started; its log is {log}" in console
    assert "Cannot bind" not in console


@pytest.mark.timeout(120)
def test_up_puts_a_busy_turn_port_on_the_console(tmp_path: Path) -> None:
    # Something else holds the port (TCP and UDP): coturn's bind errors reach the console.
    port = turn_overrides()["port"]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
    ):
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))
        tcp.listen()
        console, log = run_turn_under_supervisord(tmp_path, port)
    assert "turn: " in console and "Cannot bind" in console
    assert "Black listing" not in console
    assert "Cannot bind" in log.read_text(errors="replace")
