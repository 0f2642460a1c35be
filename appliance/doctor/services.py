"""Each service's state under its supervisor: systemd (`systemctl is-active appliance-<name>`)
or supervisord (XML-RPC on its unix socket in <data-dir>/run), else none."""

from __future__ import annotations

import asyncio
import http.client
import os
import shutil
import socket
import subprocess
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.doctor.model import Check, DoctorContext, fail, ok, skip, warn
from appliance.supervision.render import supervisor_socket
from appliance.supervision.restart import SOCKET_ENV, SUPERVISOR_ENV
from appliance.supervision.services import SERVICES

NAME = "services"
RPC_TIMEOUT = 3.0
SYSTEMD_DIR = Path("/run/systemd/system")


@dataclass(frozen=True, slots=True)
class ServiceState:
    name: str
    state: str  # supervisord's statename (RUNNING, ...) or systemd's active state (active, ...)
    running: bool
    starting: bool
    pid: int | None


@dataclass(frozen=True, slots=True)
class Supervision:
    kind: str  # "supervisord", "systemd" or "none"
    services: tuple[ServiceState, ...] = ()
    error: str = ""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket, with a timeout on every read."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        connection = _UnixConnection(self._path, self._timeout)
        self._connection = (host, connection)
        return connection


def _supervisord(path: Path) -> Supervision:
    transport = _UnixTransport(str(path), RPC_TIMEOUT)
    with xmlrpc.client.ServerProxy("http://localhost", transport=transport) as proxy:
        infos: list[dict[str, Any]] = proxy.supervisor.getAllProcessInfo()  # type: ignore[assignment]
    states = []
    for info in infos:
        state = str(info.get("statename", "UNKNOWN"))
        pid = int(info.get("pid") or 0) or None
        states.append(
            ServiceState(str(info.get("name")), state, state == "RUNNING", state == "STARTING", pid)
        )
    return Supervision("supervisord", tuple(states))


def _systemctl(*args: str) -> str:
    binary = shutil.which("systemctl") or "systemctl"
    done = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=RPC_TIMEOUT, check=False
    )
    return done.stdout.strip()


def _systemd_present() -> bool:
    if not SYSTEMD_DIR.is_dir() or shutil.which("systemctl") is None:
        return False
    return _systemctl("show", "-p", "LoadState", "--value", "appliance-web.service") == "loaded"


def _systemd() -> Supervision:
    states = []
    for spec in SERVICES:
        unit = f"appliance-{spec.name}.service"
        state = _systemctl("is-active", unit) or "unknown"
        pid_text = _systemctl("show", "-p", "MainPID", "--value", unit)
        pid = int(pid_text) if pid_text.isdigit() and int(pid_text) > 0 else None
        states.append(
            ServiceState(
                spec.name, state, state == "active", state in ("activating", "reloading"), pid
            )
        )
    if all(s.state == "unknown" for s in states):
        # systemctl could not reach systemd (a sandboxed caller, such as the web service itself).
        return Supervision("systemd", error="systemctl gave no answer")
    return Supervision("systemd", tuple(states))


def _inspect(data_dir: Path) -> Supervision:
    hint = os.environ.get(SUPERVISOR_ENV, "")
    if hint != "systemd":
        path = Path(os.environ.get(SOCKET_ENV) or supervisor_socket(data_dir / "run"))
        if path.exists():
            try:
                return _supervisord(path)
            except (ConnectionRefusedError, FileNotFoundError):
                pass  # a socket left behind by a supervisord that has ended
            except (OSError, xmlrpc.client.Error) as exc:
                return Supervision("supervisord", error=f"{type(exc).__name__}: {exc}")
    try:
        if _systemd_present():
            return _systemd()
    except (OSError, subprocess.SubprocessError) as exc:
        return Supervision("systemd", error=f"{type(exc).__name__}")
    return Supervision("none")


async def supervision(context: DoctorContext) -> Supervision:
    """What supervises the services, and their states (computed once per run)."""
    data_dir = context.settings.data_dir

    async def make() -> Supervision:
        return await asyncio.to_thread(_inspect, data_dir)

    found: Supervision = await context.shared("supervision", make)
    return found


async def web_pid(context: DoctorContext) -> int | None:
    for state in (await supervision(context)).services:
        if state.name == "web" and state.running:
            return state.pid
    return None


def _fix(kind: str, names: list[str]) -> str:
    if kind == "systemd":
        units = " ".join(f"appliance-{n}" for n in names)
        return (
            f"Start them: systemctl start {units}; see why they stopped: "
            f"journalctl -u appliance-{names[0]} -n 50."
        )
    return (
        f"Look at the console of appliance up (or <data-dir>/run/{names[0]}.log) for why "
        f"{', '.join(names)} stopped; restarting appliance up starts them again."
    )


async def check_services(context: DoctorContext) -> list[Check]:
    found = await supervision(context)
    if found.kind == "none":
        return [skip(NAME, "not running under a supervisor (neither systemd nor appliance up)")]
    if found.error:
        return [
            warn(
                NAME,
                f"cannot ask {found.kind} for the services' states ({found.error})",
                "Run appliance doctor on the box as root, or as the user the appliance runs as.",
            )
        ]
    expected = [s.name for s in SERVICES]
    if context.settings.config.storage.managed == "none":
        expected.remove("store")  # an external store: `appliance store` has nothing to run
    states = {s.name: s for s in found.services}
    parts = [f"{name} {states[name].state if name in states else 'missing'}" for name in expected]
    summary = f"{found.kind}: " + ", ".join(parts)
    down = [n for n in expected if n not in states or not (states[n].running or states[n].starting)]
    if down:
        return [fail(NAME, summary, _fix(found.kind, down))]
    starting = [n for n in expected if states[n].starting]
    if starting:
        return [
            warn(
                NAME,
                summary,
                f"{', '.join(starting)} still starting: run the doctor again in a minute.",
            )
        ]
    return [ok(NAME, summary)]
