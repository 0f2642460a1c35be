"""Prepare the `turn` service: pick addresses, render coturn's config, give its command line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from appliance.adapters import coturn, netinfo, stun_probe
from appliance.config import Settings, write_private

log = logging.getLogger(__name__)


async def prepare(settings: Settings) -> list[str]:
    """Render `<data-dir>/turn/turnserver.conf` (0600: it holds the secret); return the argv."""
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
    )
    write_private(conf, text)
    return [binary, "-c", str(conf), "--log-file", "stdout"]


def conf_path(data_dir: Path) -> Path:
    return data_dir / "turn" / "turnserver.conf"
