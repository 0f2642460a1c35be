"""The database: integrity (full or quick check), migrations current, the size of the WAL file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from appliance.doctor.model import Check, DoctorContext, fail, ok, skip, warn
from appliance.storage.database import load_migrations

MB = 1024 * 1024
NAMES = ("database", "migrations", "wal")
RESTORE = (
    "Stop the appliance, keep a copy of the database file, and restore the last good backup "
    "(appliance restore FILE)."
)


@dataclass(frozen=True, slots=True)
class _Findings:
    mode: str  # integrity_check or quick_check
    problems: tuple[str, ...]
    version: int | None  # None: no schema_version table


class _Interruptible:
    """Runs the SQLite work in a thread; `interrupt()` stops a long check from the loop."""

    def __init__(self) -> None:
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._interrupted = False

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._conn is not None:
                self._conn.interrupt()

    def run(self, path: Path, full: bool, timeout: float) -> _Findings:
        # mode=rw: never create a missing file; a WAL database cannot be opened read-only
        # without its -shm file.
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout)
        with self._lock:
            if self._interrupted:
                conn.close()
                raise sqlite3.OperationalError("interrupted")
            self._conn = conn
        try:
            mode = "integrity_check" if full else "quick_check"
            rows = conn.execute(f"PRAGMA {mode}(20)").fetchall()
            problems = tuple(str(r[0]) for r in rows if str(r[0]) != "ok")
            try:
                row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
            except sqlite3.OperationalError:
                return _Findings(mode, problems, None)
            return _Findings(mode, problems, int(row[0]) if row and row[0] is not None else 0)
        finally:
            with self._lock:
                self._conn = None
            conn.close()


async def check_database(context: DoctorContext) -> list[Check]:
    settings = context.settings
    config = settings.config.doctor
    path = settings.database_path
    if not path.is_file():
        return [
            fail(
                "database",
                f"no database file at {path}",
                "Start the web service once (it creates the database), or restore a backup.",
            ),
            skip("migrations", "no database to look at"),
            skip("wal", "no database to look at"),
        ]
    size = path.stat().st_size
    full = size <= config.integrity_full_max_mb * MB
    worker = _Interruptible()
    try:
        findings = await asyncio.to_thread(worker.run, path, full, config.check_timeout)
    except asyncio.CancelledError:
        worker.interrupt()
        raise
    except sqlite3.DatabaseError as exc:
        # "file is not a database", "database disk image is malformed", ...
        summary = f"the database cannot be read: {exc}"
        return [
            fail("database", summary, RESTORE),
            skip("migrations", "unknown: the database cannot be read"),
            _wal(path, config.wal_warn_mb),
        ]
    return [
        _integrity(findings, size),
        _migrations(findings.version),
        _wal(path, config.wal_warn_mb),
    ]


def _integrity(findings: _Findings, size: int) -> Check:
    how = "full integrity check" if findings.mode == "integrity_check" else "quick check"
    if not findings.problems:
        return ok("database", f"{how} passed ({size / MB:.1f} MB)")
    first = findings.problems[0]
    more = f" (and {len(findings.problems) - 1} more)" if len(findings.problems) > 1 else ""
    return fail("database", f"{how} found damage: {first}{more}", RESTORE)


def _migrations(version: int | None) -> Check:
    expected = len(load_migrations())
    current = version or 0
    if current == expected:
        return ok("migrations", f"schema at version {current}, as this code expects")
    if current < expected:
        return fail(
            "migrations",
            f"schema at version {current}, this code needs {expected} "
            f"({expected - current} migration(s) not applied)",
            "Restart the web service: it applies the missing migrations when it starts.",
        )
    return fail(
        "migrations",
        f"schema at version {current} is newer than this code ({expected})",
        "The appliance was downgraded: install the version that wrote this database again, "
        "or restore a backup made with this version.",
    )


def _wal(path: Path, warn_mb: int) -> Check:
    wal = path.with_name(path.name + "-wal")
    try:
        size = wal.stat().st_size
    except FileNotFoundError:
        return ok("wal", "no write-ahead log file (nothing waiting to be checkpointed)")
    if size > warn_mb * MB:
        return warn(
            "wal",
            f"write-ahead log is {size / MB:.0f} MB (over {warn_mb} MB)",
            "Something keeps a long read open, so SQLite cannot fold the log back into the "
            "database. Restart the web service; if it grows again, look for a stuck backup.",
        )
    return ok("wal", f"write-ahead log is {size / MB:.1f} MB")
