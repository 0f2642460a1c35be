"""`appliance restore`: check the whole archive, then write the box back (docs/backup.md).

Two passes over the archive. The first reads every member and checks it against the manifest
(sizes, SHA-256, names, the manifest's own digest; for an encrypted archive also age's
authentication of every chunk and of the end) and writes nothing. Only then the second pass
writes the database, the config and the secrets (each to a temporary name, checked again, then
renamed) and puts the objects back into the store through S3.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import sqlite3
import tarfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from appliance.backup import contents
from appliance.backup.crypto import MAGIC, DecryptingReader, is_encrypted, read_identity
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
    parse,
)
from appliance.backup.progress import Progress, Quiet
from appliance.backup.store import available
from appliance.backup.streams import HashingReader
from appliance.config import CONFIG_FILENAME, AppConfig, Settings, parse_config
from appliance.errors import ConfigError
from appliance.storage.database import load_migrations

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_SMALL_MEMBER = 256 * 1024 * 1024  # the manifest of millions of objects still fits
Visit = Callable[[tarfile.TarInfo, IO[bytes]], None]


@dataclass(slots=True)
class Checked:
    manifest: Manifest
    config_text: bytes
    config: AppConfig
    encrypted: bool
    identity: object | None = None


@dataclass(slots=True)
class Restored:
    manifest: Manifest
    files: int = 0
    objects: int = 0
    bytes: int = 0
    seconds: float = 0.0
    written: list[str] = field(default_factory=list)


class _Counting:
    """The raw file, moving the progress bar as it is read."""

    def __init__(self, raw: BinaryIO, progress: Progress) -> None:
        self._raw = raw
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._progress.update(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._raw.readline(size)
        self._progress.update(len(data))
        return data


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as raw:
            return raw.read(len(MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from None


def _scan(path: Path, identity: object | None, progress: Progress, visit: Visit) -> None:
    """Stream the archive's tar through `visit`, member by member, in order."""
    with path.open("rb") as raw:
        counted = _Counting(raw, progress)
        head = counted.read(len(MAGIC))
        reader: DecryptingReader | None = None
        if is_encrypted(head):
            if identity is None:
                raise BackupError("the archive is encrypted: a passphrase is needed")
            counted.readline(4096)  # the wrapped key, read already by read_identity
            reader = DecryptingReader(counted, identity)  # type: ignore[arg-type]
            source: object = reader
        else:
            raw.seek(0)
            source = counted
        try:
            with tarfile.open(fileobj=cast(BinaryIO, source), mode="r|") as tar:
                for info in tar:
                    if not info.isreg():
                        raise BackupError(f"unexpected member {info.name!r}: not a regular file")
                    member = tar.extractfile(info)
                    assert member is not None
                    visit(info, member)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if reader is not None:
                reader.finish()  # an authentication failure is the better explanation
            raise BackupError(f"the archive is damaged or truncated ({exc})") from None
        except BaseException:
            if reader is not None:
                reader.abort()
            raise
        if reader is not None and not reader.finish():
            raise BackupError("the archive has data after its end: it is damaged")


def _check_layout(path: Path) -> None:
    """A plain archive: the bytes no checksum covers (padding after each member, the end
    blocks) are zeros, and the end blocks are all there (a truncated file lacks them)."""
    size = path.stat().st_size
    with path.open("rb") as raw:
        try:
            with tarfile.open(fileobj=raw, mode="r:") as tar:
                spans = [(m.offset_data, m.size) for m in tar]
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise BackupError(f"the archive is damaged or truncated ({exc})") from None
        if not spans:
            raise BackupError("the archive is empty")
        gaps = [(start + length, (-length) % 512) for start, length in spans]
        last_start, last_size = spans[-1]
        last_end = last_start + last_size + (-last_size) % 512
        # Two zero blocks, then zeros up to a whole record: exactly what tarfile writes.
        expected = last_end + 2 * tarfile.BLOCKSIZE
        expected += (-expected) % tarfile.RECORDSIZE
        if size < expected:
            raise BackupError("the archive is truncated (its end blocks are missing)")
        if size > expected:
            raise BackupError("the archive has data after its end: it is damaged")
        gaps.append((last_end, size - last_end))
        for start, length in gaps:
            raw.seek(start)
            left = length
            while left:
                chunk = raw.read(min(left, CHUNK))
                if not chunk or chunk.count(0) != len(chunk):
                    raise BackupError("the archive is damaged (stray bytes between members)")
                left -= len(chunk)


def _identity(path: Path, passphrase: Callable[[], str]) -> object:
    with path.open("rb") as raw:
        raw.read(len(MAGIC))
        return read_identity(raw, passphrase())


def _read_all(stream: IO[bytes], limit: int, name: str) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise BackupError(f"{name} is too big")
    return data


def _latest_schema() -> int:
    return max((m.version for m in load_migrations()), default=0)


def _check_members(manifest: Manifest, seen: dict[str, tuple[int, str]], cfg: AppConfig) -> None:
    names = [m.name for m in manifest.members]
    if len(set(names)) != len(names):
        raise BackupError("the manifest lists a member twice: the archive is damaged")
    listed = {m.name: m for m in manifest.members}
    present = set(seen) - {MANIFEST_NAME, MANIFEST_SUM_NAME}
    missing = sorted(set(listed) - present)
    if missing:
        raise BackupError(f"the archive lacks {missing[0]} (and {len(missing) - 1} more)")
    extra = sorted(present - set(listed))
    if extra:
        raise BackupError(f"the archive holds {extra[0]}, which its manifest does not list")
    for member in manifest.members:
        size, digest = seen[member.name]
        if size != member.size or digest != member.sha256:
            raise BackupError(f"{member.name} is damaged (its checksum does not match)")
        _check_name(member, cfg)
    kinds = [m.kind for m in manifest.members]
    if kinds.count(Kind.DATABASE) != 1 or kinds.count(Kind.CONFIG) != 1:
        raise BackupError("the archive must hold one database and one config")


def _check_name(member: Member, cfg: AppConfig) -> None:
    ok = {
        Kind.DATABASE: member.name == DATABASE_NAME,
        Kind.CONFIG: member.name == CONFIG_NAME,
        Kind.FILE: member.name.startswith(DATA_PREFIX)
        and contents.allowed(member.name.removeprefix(DATA_PREFIX), cfg),
        Kind.OBJECT: bool(member.key) and member.name == OBJECT_PREFIX + member.key,
    }[member.kind]
    if not ok:
        raise BackupError(f"the archive holds {member.name!r}, which a restore does not write")


def check_archive(
    path: Path, passphrase: Callable[[], str], progress: Progress | None = None
) -> Checked:
    """Read the whole archive and check it; write nothing. Raises BackupError."""
    progress = progress or Quiet()
    encrypted = is_encrypted(_head(path))
    identity = _identity(path, passphrase) if encrypted else None
    seen: dict[str, tuple[int, str]] = {}
    small: dict[str, bytes] = {}

    def visit(info: tarfile.TarInfo, stream: IO[bytes]) -> None:
        if info.name in seen:
            raise BackupError(f"the archive holds {info.name!r} twice")
        hashing = HashingReader(stream, Quiet())
        if info.name in (MANIFEST_NAME, MANIFEST_SUM_NAME, CONFIG_NAME):
            small[info.name] = _read_all(hashing, MAX_SMALL_MEMBER, info.name)  # type: ignore[arg-type]
        else:
            while hashing.read(CHUNK):
                pass
        seen[info.name] = (hashing.count, hashing.hexdigest())

    progress.start(path.stat().st_size, "checking")
    try:
        _scan(path, identity, progress, visit)
        if not encrypted:
            _check_layout(path)
    finally:
        progress.close()
    if MANIFEST_NAME not in small:
        raise BackupError("the archive has no manifest: it is damaged or truncated")
    manifest = parse(small[MANIFEST_NAME], small.get(MANIFEST_SUM_NAME))
    config_text = small.get(CONFIG_NAME, b"")
    try:
        config = parse_config(tomllib.loads(config_text.decode()), "the archive's config")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        raise BackupError("the archive's config is not valid TOML") from None
    except ConfigError as exc:
        raise BackupError(str(exc)) from None
    _check_members(manifest, seen, config)
    if manifest.schema_version > _latest_schema():
        raise BackupError(
            f"the archive's database is newer (schema {manifest.schema_version}) than this "
            f"appliance knows ({_latest_schema()}): upgrade the appliance first"
        )
    return Checked(manifest, config_text, config, encrypted, identity)


# -- writing -------------------------------------------------------------------------------


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def check_target(data_dir: Path, config_path: Path, *, force: bool) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a folder")
    if data_dir.exists() and os.geteuid() == 0 and data_dir.stat().st_uid != 0:
        raise BackupError(
            f"{data_dir} belongs to another user: restore as that user (e.g. sudo -u appliance "
            "appliance ...), so the services can read what the restore writes"
        )
    if force:
        return
    if not _is_empty(data_dir):
        raise BackupError(
            f"{data_dir} is not empty: restore into an empty data dir, or give --force to "
            "replace its database, config and secrets"
        )
    if config_path.exists():
        raise BackupError(f"{config_path} exists: give --force to replace it")


def _remove_old(settings: Settings, checked: Checked) -> None:
    """--force: what the restore replaces goes first (a stale -wal must never meet the new
    database)."""
    db = settings.database_path
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{db}{suffix}").unlink()
    for name in ("recorder.key", "setup-token"):
        with contextlib.suppress(FileNotFoundError):
            (settings.data_dir / name).unlink()
    names = [m.name for m in checked.manifest.members if m.kind == Kind.FILE]
    if any(n.startswith(f"{DATA_PREFIX}{contents.TLS_DIR}/") for n in names):
        shutil.rmtree(settings.data_dir / contents.TLS_DIR, ignore_errors=True)


class _Writer:
    def __init__(self, settings: Settings, checked: Checked) -> None:
        self.settings = settings
        self.members = {m.name: m for m in checked.manifest.members}
        self.tag = secrets.token_hex(4)
        self.result = Restored(checked.manifest)
        self.store: object = None

    def _expect(self, info: tarfile.TarInfo) -> Member | None:
        if info.name in (MANIFEST_NAME, MANIFEST_SUM_NAME):
            return None
        member = self.members.get(info.name)
        if member is None:
            raise BackupError("the archive changed while it was restored")
        return member

    def _write_file(self, target: Path, stream: IO[bytes], member: Member, mode: int) -> None:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.restore-{self.tag}")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            hashing = HashingReader(stream, Quiet())
            with os.fdopen(fd, "wb") as out:
                while chunk := hashing.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if hashing.hexdigest() != member.sha256:
                raise BackupError("the archive changed while it was restored")
            if member.kind == Kind.DATABASE:
                _quick_check(temp)
            os.chmod(temp, mode)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self.result.files += 1
        self.result.bytes += member.size
        self.result.written.append(str(target))

    def visit(self, info: tarfile.TarInfo, stream: IO[bytes]) -> None:
        member = self._expect(info)
        if member is None:
            return
        settings = self.settings
        if member.kind == Kind.DATABASE:
            self._write_file(settings.database_path, stream, member, 0o600)
        elif member.kind == Kind.CONFIG:
            self._write_file(settings.config_path, stream, member, member.mode & 0o640)
        elif member.kind == Kind.FILE:
            name = member.name.removeprefix(DATA_PREFIX)
            self._write_file(settings.data_dir / name, stream, member, member.mode & 0o644)
        else:
            from appliance.backup.store import BackupStore

            assert isinstance(self.store, BackupStore)
            hashing = HashingReader(stream, Quiet())
            self.store.put(member.key, hashing, member.size, member.content_type)  # type: ignore[arg-type]
            if hashing.hexdigest() != member.sha256:
                raise BackupError("the archive changed while it was restored")
            self.result.objects += 1
            self.result.bytes += member.size


def _quick_check(path: Path) -> None:
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.Error as exc:
        raise BackupError(f"the archive's database is unusable: {exc}") from None
    if verdict != "ok":
        raise BackupError(f"the archive's database fails SQLite's check: {verdict}")


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def restore_archive(
    path: Path,
    data_dir: Path,
    config_path: Path | None = None,
    *,
    force: bool = False,
    passphrase: Callable[[], str] = lambda: "",
    progress: Progress | None = None,
) -> Restored:
    """Check the archive, then restore it into `data_dir` (and the store). Raises BackupError;
    if the check fails, nothing was written."""
    started = time.monotonic()
    progress = progress or Quiet()
    data_dir = data_dir.resolve()
    config_path = (config_path or data_dir / CONFIG_FILENAME).resolve()
    check_target(data_dir, config_path, force=force)
    checked = check_archive(path, passphrase, progress)
    settings = Settings(data_dir, checked.config, config_path)
    if not force and settings.database_path.exists():
        raise BackupError(f"{settings.database_path} exists: give --force to replace it")
    with _private_umask():
        if not data_dir.exists():
            data_dir.mkdir(mode=0o700, parents=True)
        writer = _Writer(settings, checked)
        with available(settings, create_bucket=True) as store:
            if force:  # only once the store is up: a restore that cannot start removes nothing
                _remove_old(settings, checked)
            writer.store = store
            progress.start(path.stat().st_size, "restoring")
            try:
                _scan(path, checked.identity, progress, writer.visit)
            except BackupError as exc:
                if not (writer.result.files or force):
                    raise
                raise BackupError(
                    f"{exc.message}; the restore stopped part-way: once that is fixed, run it "
                    "again with --force"
                ) from None
            finally:
                progress.close()
    result = writer.result
    result.seconds = time.monotonic() - started
    log.info(
        "restored %s: %d files, %d objects, %.1f s",
        path,
        result.files,
        result.objects,
        result.seconds,
    )
    return result
