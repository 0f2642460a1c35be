"""The `turn` service: pick addresses, make sure the certificate is there, render coturn's config;
then run coturn as a child that is told (SIGUSR2) to reload its certificate whenever the
certificate files change (`adapters.coturn_process`, which `appliance turn` execs into so that
the long-running parent of coturn stays small)."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from appliance.adapters import coturn, coturn_process, netinfo, stun_probe
from appliance.adapters.coturn_process import coturn_line as coturn_line
from appliance.config import AppConfig, Settings, write_private
from appliance.services.tls import TlsManager

log = logging.getLogger(__name__)


def turns_enabled(config: AppConfig) -> bool:
    """Whether coturn serves `turns:`: with turn.cert_file/key_file, or the web's TLS material
    (always there when the web serves HTTPS)."""
    turn = config.turn
    return bool(turn.cert_file and turn.key_file) or config.web.https_port > 0


async def prepare(settings: Settings, *, tls: tuple[Path, Path] | None = None) -> list[str]:
    """Render `<data-dir>/turn/turnserver.conf` (0600: it holds the secret); return the argv.

    `tls`: (certificate chain, key) for `turns:` (default: turn.cert_file/key_file if set)."""
    config = settings.config.turn
    binary = shutil.which(config.server_binary)
    if binary is None:
        raise FileNotFoundError(
            f"{config.server_binary} not found: install Debian's coturn (./scripts/setup does)"
        )
    relay_ip = config.relay_ip or netinfo.primary_address()
    external_ip = config.external_ip or None
    if external_ip is None and config.stun_servers:
        found = await stun_probe.probe(config.stun_servers, wait=config.stun_timeout)
        if found and found.external_ip and found.external_ip != relay_ip:
            log.info("behind NAT: public address %s (%s)", found.external_ip, found.nat_type)
            external_ip = found.external_ip
    folder = settings.data_dir / "turn"
    folder.mkdir(mode=0o700, exist_ok=True)
    conf = folder / "turnserver.conf"
    text = coturn.render_config(
        config,
        relay_ip=relay_ip,
        external_ip=external_ip,
        version=coturn.coturn_version(binary),
        pid_file=folder / "turnserver.pid",
        userdb=folder / "turndb",
        tls=tls,
    )
    write_private(conf, text)
    return [binary, "-c", str(conf), "--log-file", "stdout"]


def conf_path(data_dir: Path) -> Path:
    return data_dir / "turn" / "turnserver.conf"


def tls_manager(settings: Settings) -> TlsManager | None:
    """The TlsManager whose files coturn uses (None: no `turns:`). turn.cert_file/key_file win
    over the web's material; the manager is only read from, or (mode internal) keeps the shared
    files current exactly like the web process does, under the same lock."""
    config = settings.config
    turn = config.turn
    if turn.cert_file and turn.key_file:
        files = (_resolve(settings, turn.cert_file), _resolve(settings, turn.key_file))
        return TlsManager(settings, files=files)
    if config.web.https_port > 0:
        return TlsManager(settings)
    return None


def _resolve(settings: Settings, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else settings.data_dir / path


async def _certificate(settings: Settings) -> tuple[Path, Path] | None:
    """The (certificate chain, key) coturn serves `turns:` with, current and checked (issued
    first in tls.mode internal); None: no `turns:`."""
    manager = tls_manager(settings)
    if manager is None:
        return None
    await manager.refresh()  # the files must exist before coturn starts
    return manager.cert_path, manager.key_path


async def supervise(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> int:
    """Run coturn until it exits (its exit status, or 1 if it died of a signal) or until `stop`
    is set (SIGINT/SIGTERM when None; then 0). Certificate changes reach it as SIGUSR2.

    The loop is `adapters.coturn_process.run` (what `appliance turn` execs into), in a thread."""
    tls = await _certificate(settings)
    argv = await prepare(settings, tls=tls)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    stop_r, stop_w = os.pipe()

    def run() -> int:
        try:
            return coturn_process.run(
                argv,
                stop_fd=stop_r,
                certificate=tls,
                interval=settings.config.tls.check_interval,
                on_started=on_started,
            )
        finally:
            os.close(stop_r)

    running = asyncio.create_task(asyncio.to_thread(run))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        os.close(stop_w)  # the loop sees its end of the pipe close: it stops coturn, if running
        code = await running
    return code


async def light_command(settings: Settings, *, log_format: str, log_level: str) -> list[str]:
    """What `appliance turn` execs into once the config is rendered: `supervise`'s loop in a
    process that has not loaded the config model (`adapters.coturn_process`)."""
    tls = await _certificate(settings)
    argv = await prepare(settings, tls=tls)
    return coturn_process.command(
        argv,
        certificate=tls,
        interval=settings.config.tls.check_interval,
        log_format=log_format,
        log_level=log_level,
    )
