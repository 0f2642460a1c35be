"""`appliance backup`: write one archive (docs/backup.md).

The database snapshot comes first, then the objects are listed: every object a row of the
snapshot points to was in the store by then (unless deleted meanwhile). Everything streams: the
archive is written to a hidden file beside the destination and renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import tarfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, cast

from appliance import __version__
from appliance.backup import contents, snapshot
from appliance.backup.crypto import EncryptingWriter
from appliance.backup.errors import BackupError
from appliance.backup.manifest import (
    CONFIG_NAME,
    DATA_PREFIX,
    DATABASE_NAME,
    MANIFEST_NAME,
    MANIFEST_SUM_NAME,
    OBJECT_PREFIX,
    Kind,
    Manifest,
    Member,
    digest_line,
)
from appliance.backup.progress import Progress, Quiet
from appliance.backup.store import available
from appliance.backup.streams import HashingReader, Readable
from appliance.config import Settings

log = logging.getLogger(__name__)

COPY_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    size: int
    manifest: Manifest
    seconds: float


class _Archive:
    """The tar being written, member by member, each hashed as it streams through."""

    def __init__(self, sink: BinaryIO | EncryptingWriter, progress: Progress) -> None:
        self._tar = tarfile.open(  # noqa: SIM115 - closed by close()
            fileobj=cast(BinaryIO, sink),
            mode="w|",
            format=tarfile.PAX_FORMAT,
        )
        # Objects stream through in big reads: fewer GIL hand-overs with pyrage's thread.
        self._tar.copybufsize = COPY_BUFFER  # type: ignore[attr-defined]
        self._progress = progress
        self._now = int(time.time())
        self.members: list[Member] = []

    def add(
        self,
        name: str,
        kind: Kind,
        source: Readable,
        size: int,
        *,
        mode: int = 0o600,
        key: str = "",
        content_type: str = "",
        listed: bool = True,
    ) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = mode
        info.mtime = self._now
        reader = HashingReader(source, self._progress if listed else Quiet())
        self._tar.addfile(info, reader)
        if reader.count != size:
            raise BackupError(f"{name} changed size while it was read")
        if listed:
            member = Member(
                name=name,
                kind=kind,
                size=size,
                sha256=reader.hexdigest(),
                mode=mode,
                key=key,
                content_type=content_type,
            )
            self.members.append(member)

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, Kind.FILE, io.BytesIO(data), len(data), mode=0o644, listed=False)

    def close(self) -> None:
        self._tar.close()


def _file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def write_backup(
    settings: Settings,
    dest: Path,
    *,
    passphrase: str | None = None,
    progress: Progress | None = None,
) -> Written:
    """Write the archive to `dest` (mode 0600). Raises BackupError; leaves no partial file."""
    started = time.monotonic()
    progress = progress or Quiet()
    dest = dest.resolve()
    if dest.is_dir():
        raise BackupError(f"{dest} is a directory; give the archive's file name")
    if not dest.parent.is_dir():
        raise BackupError(f"the folder {dest.parent} does not exist")
    tag = secrets.token_hex(4)
    partial = dest.with_name(f".{dest.name}.partial-{tag}")
    db_copy = dest.with_name(f".{dest.name}.db-{tag}")
    config = settings.config
    for name in contents.external_files(config):
        log.warning("not in the backup (outside the data dir): %s", name)
    try:
        snap = snapshot.take(settings.database_path, db_copy)
        files = [(CONFIG_NAME, Kind.CONFIG, settings.config_path)]
        files += [
            (DATA_PREFIX + name, Kind.FILE, path)
            for name, path in contents.data_files(settings.data_dir, config)
        ]
        with available(settings, create_bucket=False) as store:
            listed = store.listing()
            total = snap.size + sum(p.stat().st_size for _, _, p in files)
            progress.start(total + sum(o.size for o in listed), "backup")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw:
                sink: BinaryIO | EncryptingWriter = (
                    EncryptingWriter(raw, passphrase) if passphrase else raw
                )
                try:
                    archive = _Archive(sink, progress)
                    with db_copy.open("rb") as db:
                        archive.add(DATABASE_NAME, Kind.DATABASE, db, snap.size)
                    db_copy.unlink()
                    for name, kind, path in files:
                        data = path.read_bytes()  # small: config, keys, certificates
                        mode = _file_mode(path)
                        archive.add(name, kind, io.BytesIO(data), len(data), mode=mode)
                    skipped = 0
                    for entry in listed:
                        with store.open(entry.key) as opened:
                            if opened is None:
                                skipped += 1  # deleted since the listing
                                progress.update(entry.size)
                                continue
                            archive.add(
                                OBJECT_PREFIX + entry.key,
                                Kind.OBJECT,
                                opened.body,
                                opened.size,
                                key=entry.key,
                                content_type=opened.content_type,
                            )
                    manifest = Manifest(
                        appliance_version=__version__,
                        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        snapshot_at=snap.taken_at,
                        schema_version=snap.schema_version,
                        bucket=config.storage.bucket,
                        objects_skipped=skipped,
                        members=archive.members,
                    )
                    encoded = manifest.encode()
                    archive.add_bytes(MANIFEST_NAME, encoded)
                    archive.add_bytes(MANIFEST_SUM_NAME, digest_line(encoded))
                    archive.close()
                    if isinstance(sink, EncryptingWriter):
                        sink.close()
                except BaseException:
                    if isinstance(sink, EncryptingWriter):
                        sink.abort()
                    raise
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(partial, dest)
        _fsync_dir(dest.parent)
    except OSError as exc:
        raise BackupError(f"the backup could not be written: {exc.strerror or exc}") from None
    finally:
        progress.close()
        for leftover in (partial, db_copy):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    size = dest.stat().st_size
    seconds = time.monotonic() - started
    log.info(
        "backup written: %s, %d bytes, %d objects, %.1f s",
        dest,
        size,
        sum(1 for m in manifest.members if m.kind == Kind.OBJECT),
        seconds,
    )
    return Written(dest, size, manifest, seconds)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
