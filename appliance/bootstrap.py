"""`appliance init`: a data dir with a config holding fresh secrets and a migrated database.

While set-up is pending (config `setup.token` is set) the token is also kept in
`<data-dir>/setup-token` (0600), so an admin on the box can read it; finishing set-up deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path

from appliance import config as config_mod
from appliance.storage.database import Database

log = logging.getLogger(__name__)


def init_data_dir(
    data_dir: Path, config_path: Path | None = None
) -> tuple[config_mod.Settings, bool]:
    """Create what is missing and migrate the database. Returns (settings, created)."""
    settings, created = ensure_config(data_dir, config_path)
    asyncio.run(_migrate(settings))
    return settings, created


def ensure_config(
    data_dir: Path, config_path: Path | None = None
) -> tuple[config_mod.Settings, bool]:
    """Write a config with fresh secrets unless one exists (never overwritten); load it."""
    if not data_dir.is_dir():
        # Private from the start; an existing dir keeps its mode (the installer makes it 0750).
        data_dir.mkdir(mode=0o700, parents=True)
        data_dir.chmod(0o700)
    path = config_path or data_dir / config_mod.CONFIG_FILENAME
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        import tomlkit  # only when a config file is written

        config_mod.write_private(path, tomlkit.dumps(config_mod.generate_config_document()))
    settings = config_mod.load(data_dir, path)
    sync_token_file(settings)
    return settings, created


# -- the one-time set-up token ------------------------------------------------------------------

SETUP_TOKEN_FILENAME = "setup-token"


def token_file(data_dir: Path) -> Path:
    return data_dir / SETUP_TOKEN_FILENAME


def sync_token_file(settings: config_mod.Settings) -> None:
    """Write the pending set-up token to its 0600 file, or remove the file once set-up is done."""
    token = settings.config.setup.token.get_secret_value()
    path = token_file(settings.data_dir)
    try:
        if not token:
            remove_token_file(settings.data_dir)
            return
        try:
            current: str | None = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            current = None
        except OSError:
            current = None  # e.g. written by root: replace it with our own
        if current != token:
            remove_token_file(settings.data_dir)
            config_mod.write_private(path, token + "\n")
    except OSError as exc:
        log.warning("could not update %s: %s", path, exc.strerror or exc)


def remove_token_file(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        token_file(data_dir).unlink()


def base_url(settings: config_mod.Settings, host: str) -> str:
    """The web UI's address under `host`: HTTPS when a listener is configured, else HTTP."""
    web = settings.config.web
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    if web.https_port:
        port = "" if web.https_port == 443 else f":{web.https_port}"
        return f"https://{host}{port}/"
    port = "" if web.port == 80 else f":{web.port}"
    return f"http://{host}{port}/"


def setup_notice(settings: config_mod.Settings, *, show_token: bool = True) -> str | None:
    """What to tell the admin on the console while set-up is pending (None once it is done)."""
    token = settings.config.setup.token.get_secret_value()
    if not token:
        return None
    from appliance.adapters.netinfo import all_addresses

    hosts = ["localhost", *all_addresses()]
    lines = ["Set-up is not finished yet. Open the set-up wizard in a browser:"]
    lines += [f"  {base_url(settings, host)}" for host in hosts]
    if show_token:
        lines.append(f"and enter the one-time set-up token: {token}")
    lines.append(f"(the token is also in {token_file(settings.data_dir)}, readable by its owner)")
    return "\n".join(lines)


def print_setup_notice(settings: config_mod.Settings) -> bool:
    """Print the set-up notice if set-up is pending; True if it was printed."""
    notice = setup_notice(settings)
    if notice:
        print(notice, flush=True)
    return notice is not None


async def _migrate(settings: config_mod.Settings) -> None:
    db = Database(
        settings.database_path,
        synchronous=settings.config.database.synchronous,
        batch_writer=False,
    )
    await db.start()
    await db.stop()
    if settings.database_path.exists():
        settings.database_path.chmod(0o600)
