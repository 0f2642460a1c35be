"""Atomic edits of the TOML config that keep its comments and layout (tomlkit).

A change is written to a temporary file in the config's own directory with the same mode (and
group, where allowed), flushed to disk, then renamed over the old file, so a reader sees either
the old or the new config, never half of one. The result must load as a valid configuration
before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table
from tomlkit.toml_document import TOMLDocument

from appliance import config as config_mod
from appliance.errors import ConfigError

#: `{"section": {"key": value}}`: the keys to set, section by section.
Changes = Mapping[str, Mapping[str, Any]]


def set_keys(doc: TOMLDocument, section: str, values: Mapping[str, Any]) -> None:
    """Set several keys of one `[section]`, creating the table if it is missing. Keys already
    there keep their place (and the comments around them); new keys are added at the end."""
    table = doc.get(section)
    if table is None:
        table = tomlkit.table()
        doc[section] = table
    if not isinstance(table, Table):
        raise ConfigError(f"[{section}] is not a table in the config file")
    for key, value in values.items():
        table[key] = value


def apply_changes(doc: TOMLDocument, changes: Changes) -> TOMLDocument:
    for section, values in changes.items():
        set_keys(doc, section, values)
    return doc


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text`: temp file beside it (same mode), fsync, rename, fsync dir."""
    try:
        old = path.stat()
        mode = old.st_mode & 0o777
        group: int | None = old.st_gid
    except FileNotFoundError:
        mode, group = 0o600, None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        if group is not None:
            # Keep the file's group (e.g. root:appliance); only possible where allowed.
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, group)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def update_config(path: Path, changes: Changes) -> config_mod.AppConfig:
    """Set `changes` in the config file at `path` atomically; returns the new file's config.

    Raises `ConfigError` (and writes nothing) if the result would not load."""
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    apply_changes(doc, changes)
    text = tomlkit.dumps(doc)
    parsed = config_mod.parse_config(tomlkit.parse(text).unwrap(), str(path))
    atomic_write(path, text)
    return parsed
