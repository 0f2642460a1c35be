"""What finishing set-up relies on: atomic config edits that keep comments, and asking the
supervisor (a real supervisord here) to restart services."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
import sys
import xmlrpc.client
from pathlib import Path

import pytest
import tomlkit

from appliance.bootstrap import ensure_config
from appliance.config import load
from appliance.config_writer import update_config
from appliance.errors import ConfigError
from appliance.supervision.restart import (
    ManualRestarter,
    RestartPlan,
    SupervisordRestarter,
    SystemdRestarter,
    from_environment,
)
from tests.support import stop_process


def test_update_keeps_comments_mode_and_other_keys(tmp_path: Path) -> None:
    settings, _ = ensure_config(tmp_path / "data")
    path = settings.config_path
    path.chmod(0o640)
    before = path.read_text()
    secret = settings.config.auth.jwt_secret.get_secret_value()
    config = update_config(
        path,
        {
            "organisation": {"name": "Riverside"},
            "turn": {"port": 3479, "min_port": 50000, "max_port": 50100},
            "setup": {"token": ""},
        },
    )
    assert config.organisation.name == "Riverside"
    text = path.read_text()
    # Every comment of the original is still there, in order.
    comments = [line for line in before.splitlines() if line.strip().startswith("#")]
    assert [line for line in text.splitlines() if line.strip().startswith("#")] == comments
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    loaded = load(settings.data_dir).config
    assert loaded.auth.jwt_secret.get_secret_value() == secret
    assert loaded.turn.port == 3479
    assert loaded.turn.secret == settings.config.turn.secret
    assert loaded.setup.token.get_secret_value() == ""
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


def test_an_invalid_result_writes_nothing(tmp_path: Path) -> None:
    settings, _ = ensure_config(tmp_path / "data")
    before = settings.config_path.read_bytes()
    with pytest.raises(ConfigError, match=r"turn\.port"):
        update_config(settings.config_path, {"turn": {"port": 0}})
    with pytest.raises(ConfigError, match="unknown key"):
        update_config(settings.config_path, {"web": {"no_such_key": 1}})
    assert settings.config_path.read_bytes() == before
    assert [p.name for p in settings.data_dir.iterdir() if p.name.endswith(".tmp")] == []


def test_a_missing_section_is_added(tmp_path: Path) -> None:
    settings, _ = ensure_config(tmp_path / "data")
    update_config(settings.config_path, {"recording": {"enabled": True, "retention_days": 7}})
    doc = tomlkit.parse(settings.config_path.read_text())
    assert doc["recording"] == {"enabled": True, "retention_days": 7}


def test_restarter_from_environment() -> None:
    assert isinstance(from_environment({}), ManualRestarter)
    assert isinstance(from_environment({"APPLIANCE_SUPERVISOR": "systemd"}), SystemdRestarter)
    # Without the socket path supervisord cannot be reached: say so and fall back.
    assert isinstance(from_environment({"APPLIANCE_SUPERVISOR": "supervisord"}), ManualRestarter)
    found = from_environment(
        {"APPLIANCE_SUPERVISOR": "supervisord", "APPLIANCE_SUPERVISOR_SOCKET": "/run/x.sock"}
    )
    assert isinstance(found, SupervisordRestarter)


def _supervisord() -> str:
    beside = Path(sys.executable).parent / "supervisord"
    return str(beside) if beside.is_file() else shutil.which("supervisord") or "supervisord"


def _info(sock: Path, name: str) -> dict[str, object]:
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{sock}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
    try:
        info: dict[str, object] = dict(proxy.supervisor.getProcessInfo(name))  # type: ignore[arg-type]
        return info
    finally:
        transport.close()


async def _wait_running(sock: Path, *names: str) -> None:
    async with asyncio.timeout(20):
        while True:
            try:
                if all(_info(sock, n)["statename"] == "RUNNING" for n in names):
                    return
            except (OSError, xmlrpc.client.Error):
                pass
            await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_supervisord_restarts_turn_stops_store_and_ends_web(tmp_path: Path) -> None:
    sock = tmp_path / "supervisor.sock"
    programs = ""
    for name in ("turn", "store"):
        programs += (
            f"\n[program:{name}]\ncommand={shutil.which('sleep')} 600\nstartsecs=0\n"
            "autorestart=true\nstopsignal=TERM\nstopwaitsecs=5\n"
        )
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        "[supervisord]\nnodaemon=true\n"
        f"pidfile={tmp_path / 'supervisord.pid'}\nlogfile={tmp_path / 'supervisord.log'}\n"
        f"childlogdir={tmp_path}\n"
        f"[unix_http_server]\nfile={sock}\nchmod=0700\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        + programs
    )
    proc = subprocess.Popen(
        [_supervisord(), "-n", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await _wait_running(sock, "turn", "store")
        turn_pid = _info(sock, "turn")["pid"]
        exited = asyncio.Event()
        restarter = SupervisordRestarter(str(sock), delay=0, exit_self=exited.set)
        await restarter.apply(RestartPlan(restart=("turn",), stop=("store",), web=True))
        assert exited.is_set()
        turn = _info(sock, "turn")
        assert turn["statename"] == "RUNNING"
        assert turn["pid"] != turn_pid
        assert _info(sock, "store")["statename"] == "STOPPED"
        # Stopping what is already stopped is fine.
        await restarter.apply(RestartPlan(restart=("turn",), stop=("store",), web=False))
    finally:
        stop_process(proc)


async def test_unreachable_supervisord_still_ends_web(tmp_path: Path) -> None:
    exited = asyncio.Event()
    restarter = SupervisordRestarter(str(tmp_path / "missing.sock"), delay=0, exit_self=exited.set)
    await restarter.apply(RestartPlan(restart=("turn",)))
    assert exited.is_set()
