"""Which files of the data dir a backup holds, listed explicitly.

In: the config file, `recorder.key` (the recorder's service key), `setup-token` (while set-up
is pending), every `*.pem` directly in `tls/` (the box's CA and its key, the server certificate
and key, an uploaded certificate), and certificate or key files that `[tls]` or `[turn]` name
inside the data dir. The database comes through SQLite's online backup, the objects through S3.

Out: `run/` (supervisord's socket and logs), `recorder/` (recordings being made), `objects/`
(the managed store's own folder), `turn/` (coturn's config, rendered at every start),
`backups/`, the database's `-wal`/`-shm` files, anything else.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from appliance.adapters.service_key import KEY_FILENAME
from appliance.bootstrap import SETUP_TOKEN_FILENAME
from appliance.config import AppConfig

TLS_DIR = "tls"
_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")


def safe_relative(name: str) -> bool:
    """A relative path of plain names: no `..`, no hidden parts, nothing absolute."""
    parts = PurePosixPath(name).parts
    return bool(parts) and len(parts) <= 8 and all(_PART.match(p) for p in parts)


def _named_by_config(config: AppConfig) -> list[str]:
    """Certificate and key files the config names with a path relative to the data dir."""
    names = [config.tls.cert_file, config.tls.key_file, config.turn.cert_file]
    names.append(config.turn.key_file)
    return [n for n in names if n and not Path(n).is_absolute()]


def allowed(name: str, config: AppConfig) -> bool:
    """Whether a restore may write `<data-dir>/<name>` (`name` from an archive)."""
    if not safe_relative(name):
        return False
    parts = PurePosixPath(name).parts
    if name in (KEY_FILENAME, SETUP_TOKEN_FILENAME):
        return True
    if len(parts) == 2 and parts[0] == TLS_DIR:
        return True
    return name in {str(PurePosixPath(n)) for n in _named_by_config(config)}


def data_files(data_dir: Path, config: AppConfig) -> list[tuple[str, Path]]:
    """(name relative to the data dir, path) of each secret file there is, in a fixed order."""
    found: dict[str, Path] = {}
    for name in (KEY_FILENAME, SETUP_TOKEN_FILENAME):
        found[name] = data_dir / name
    tls = data_dir / TLS_DIR
    if tls.is_dir():
        for path in sorted(tls.glob("*.pem")):
            found[f"{TLS_DIR}/{path.name}"] = path
    for name in _named_by_config(config):
        found.setdefault(str(PurePosixPath(name)), data_dir / name)
    return [
        (name, path)
        for name, path in found.items()
        if safe_relative(name) and path.is_file() and not path.is_symlink()
    ]


def external_files(config: AppConfig) -> list[str]:
    """Certificate files the config names outside the data dir: not in the backup."""
    names = [config.tls.cert_file, config.tls.key_file, config.turn.cert_file]
    names.append(config.turn.key_file)
    return [n for n in names if n and Path(n).is_absolute()]
