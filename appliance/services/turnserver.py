"""The `turn` service: pick addresses, render coturn's config, and run coturn as a child that
is told (SIGUSR2) to reload its certificate whenever the certificate files change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from appliance.adapters import coturn, netinfo, stun_probe
from appliance.config import AppConfig, Settings, write_private
from appliance.services.tls import TlsManager

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0

#: coturn's own lines, re-logged one by one so they get the service's log format and level.
coturn_log = logging.getLogger("coturn")
_COUNTER = re.compile(r"^\d+: (?:\(\d+\): )?:? ?")  # "0: : " / "12: (1234): " uptime prefix
_ERROR = re.compile(r"error|cannot|can't|fail|errno|denied|not found", re.IGNORECASE)
_WARNING = re.compile(r"warn", re.IGNORECASE)


def coturn_line(raw: bytes) -> tuple[int, str]:
    """The level and text of one line of coturn's output (its levels are words in the text,
    and 4.6.1 writes none)."""
    text = _COUNTER.sub("", raw.decode("utf-8", "replace").rstrip())
    if "ERROR" in text:
        return logging.ERROR, text
    if _WARNING.search(text):
        return logging.WARNING, text
    if _ERROR.search(text):
        return logging.ERROR, text
    return logging.INFO, text


async def forward_output(stream: asyncio.StreamReader) -> None:
    """Until coturn closes its end; reading never stops early (coturn would block on a full
    pipe)."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the reader's limit: dropped, the next one is read
            continue
        if not raw:
            return
        level, text = coturn_line(raw)
        if text:
            coturn_log.log(level, "%s", text)


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


async def supervise(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_started: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> int:
    """Run coturn until it exits (its exit status, or 1 if it died of a signal) or until `stop`
    is set (SIGINT/SIGTERM when None; then 0). Certificate changes reach it as SIGUSR2."""
    manager = tls_manager(settings)
    tls: tuple[Path, Path] | None = None
    if manager is not None:
        await manager.refresh()  # the files must exist before coturn starts
        tls = (manager.cert_path, manager.key_path)
    argv = await prepare(settings, tls=tls)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert proc.stdout is not None
    forwarding = asyncio.create_task(forward_output(proc.stdout), name="coturn-output")
    if manager is not None:

        def reload() -> None:
            if proc.returncode is None:
                log.info("certificate changed: asking coturn to reload it (SIGUSR2)")
                proc.send_signal(signal.SIGUSR2)

        manager.on_change(reload)
        await manager.start()
    if on_started is not None:
        on_started(proc)
    exited = asyncio.create_task(proc.wait())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if manager is not None:
            await manager.stop()
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        exited.cancel()
        try:  # the rest of its output (the pipe ends with coturn)
            async with asyncio.timeout(STOP_TIMEOUT):
                await forwarding
        except TimeoutError:
            forwarding.cancel()
    if stop.is_set():
        return 0
    code = proc.returncode or 0
    log.error("coturn exited on its own (status %s)", code)
    return code if code > 0 else 1
