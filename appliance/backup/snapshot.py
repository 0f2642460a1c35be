"""A consistent copy of the live database through SQLite's online backup API.

The copy is one read transaction on the source (`Connection.backup` with every page in one
step), so it is the database as of the moment that transaction began: every transaction
committed before it is in, nothing after. In WAL mode writers carry on meanwhile; only a
checkpoint waits."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.backup.errors import BackupError


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: Path
    #: Unix time just before the read transaction began: commits before it are in the copy.
    taken_at: float
    schema_version: int
    size: int


def schema_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def take(source: Path, dest: Path, *, busy_timeout: float = 30.0) -> Snapshot:
    """Copy `source` into the new file `dest` (a self-contained file, not in WAL mode)."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    try:
        src = sqlite3.connect(source, timeout=busy_timeout)  # reads only
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open the database {source}: {exc}") from None
    try:
        src.isolation_level = None
        dst = sqlite3.connect(dest, isolation_level=None)
        try:
            taken_at = time.time()
            src.execute("BEGIN")
            src.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()  # the snapshot begins
            src.backup(dst)  # every page in one step, inside that read transaction
            src.execute("COMMIT")
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            version = schema_version(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        raise BackupError(f"the database snapshot failed: {exc}") from None
    finally:
        src.close()
    return Snapshot(dest, taken_at, version, dest.stat().st_size)
