"""`appliance init`: a data dir with a config holding fresh secrets and a migrated database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import tomlkit

from appliance import config as config_mod
from appliance.storage.database import Database


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
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    path = config_path or data_dir / config_mod.CONFIG_FILENAME
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
        config_mod.write_private(path, tomlkit.dumps(config_mod.generate_config_document()))
    return config_mod.load(data_dir, path), created


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
