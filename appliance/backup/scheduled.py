"""`appliance backup --scheduled` (run by appliance-backup.timer): a dated archive in
`backup.directory`, then only the newest `backup.keep` are kept."""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from appliance.backup.create import Written, write_backup
from appliance.backup.errors import BackupError
from appliance.backup.progress import Progress
from appliance.config import Settings

log = logging.getLogger(__name__)

ARCHIVE_NAME = re.compile(r"^appliance-(\d{8}T\d{6}Z)\.tar(\.age)?$")
PARTIAL_NAME = re.compile(r"^\.appliance-\d{8}T\d{6}Z\.tar(\.age)?\.(partial|db)-[0-9a-f]{8}$")


def _resolve(settings: Settings, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else settings.data_dir / path


def directory(settings: Settings) -> Path:
    configured = settings.config.backup.directory
    return _resolve(settings, configured) if configured else settings.data_dir / "backups"


def read_passphrase_file(path: Path) -> str:
    """The first line of the file (without its line break)."""
    try:
        with path.open(encoding="utf-8") as handle:
            line = handle.readline(4097)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise BackupError(f"cannot read the passphrase file {path}: {reason}") from None
    passphrase = line.rstrip("\r\n")
    if not passphrase:
        raise BackupError(f"the passphrase file {path} is empty")
    return passphrase


def archives(folder: Path) -> list[Path]:
    """The scheduled archives in `folder`, oldest first (by the time in their names)."""
    found = [
        (match.group(1), path)
        for path in folder.iterdir()
        if (match := ARCHIVE_NAME.match(path.name)) and path.is_file()
    ]
    return [path for _, path in sorted(found)]


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives; return what was deleted."""
    removed = archives(folder)[:-keep] if keep > 0 else []
    for path in removed:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return removed


def run(settings: Settings, progress: Progress, now: datetime | None = None) -> Written:
    config = settings.config.backup
    passphrase = None
    if config.passphrase_file:
        passphrase = read_passphrase_file(_resolve(settings, config.passphrase_file))
    folder = directory(settings)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in folder.iterdir():  # left by a backup that was killed
        if PARTIAL_NAME.match(path.name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    dest = folder / f"appliance-{stamp}.tar{'.age' if passphrase else ''}"
    if dest.exists():
        raise BackupError(f"{dest} exists already")
    written = write_backup(settings, dest, passphrase=passphrase, progress=progress)
    for path in prune(folder, config.keep):
        log.info("deleted the old backup %s (backup.keep = %d)", path.name, config.keep)
    return written
