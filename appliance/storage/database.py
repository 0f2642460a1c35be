"""The SQLite database: WAL, foreign keys, numbered migrations.

One aiosqlite connection serves reads and most writes. The chat group-commit writer's batches go
to a connection in a child process of their own (`write_batch`, `writer_process.py`), so a whole
batch (BEGIN, INSERT, COMMIT) is one round trip on a pipe and runs beside the event loop, not
under its GIL. Both write paths share one lock, so writes never wait on SQLite's busy lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import aiosqlite

from appliance.storage.writer_process import WriterProcess

T = TypeVar("T")
A = TypeVar("A")

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    folder = resources.files("appliance.storage") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for index, migration in enumerate(found, start=1):
        if migration.version != index:
            raise RuntimeError(f"migration numbering has a gap or duplicate at {migration.name}")
    return found


class Database:
    """Owns the connection. Writes go through `transaction()`, which serialises them."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        batch_writer: bool = True,
    ):
        """`batch_writer=False`: no writer process (`write_batch` unavailable), for the CLI's
        short jobs."""
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._batch_writer = batch_writer
        self._writer: WriterProcess | None = None

    @property
    def path(self) -> Path:
        return self._path

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("database is not started")
        return self._conn

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={self._synchronous}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        self._conn = conn
        try:
            await migrate(conn)
            if self._batch_writer:
                writer = WriterProcess(
                    self._path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
                )
                await writer.start()
                self._writer = writer
        except BaseException:
            self._conn = None
            await conn.close()
            raise

    @property
    def writer_pid(self) -> int | None:
        return self._writer.pid if self._writer is not None else None

    async def stop(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            async with self._write_lock:  # a batch still in flight commits first
                await writer.stop()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def write_batch(self, work: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        """Run `work(conn, arg)` in one BEGIN IMMEDIATE ... COMMIT in the writer process and
        return its result. `work` must be a module-level function, and `arg` and the result
        plain picklable data. If `work` raises, the transaction is rolled back and the error
        re-raised here. If the caller is cancelled, the writer still commits or rolls back, and
        the write lock is held until it has. If the writer process has died, the call raises
        `WriterGoneError` and the next one starts a new process."""
        async with self._write_lock:
            writer = self._writer
            if writer is None:
                raise RuntimeError("database is not started, or has no batch writer")
            if not writer.running:
                await writer.stop()
                await writer.start()
            reply = writer.submit(work, arg)
            cancelled = False
            while not reply.done():  # the lock stays held until the transaction has ended,
                try:  # however often the caller is cancelled meanwhile (wait never cancels it)
                    await asyncio.wait([reply])
                except asyncio.CancelledError:
                    cancelled = True
            if cancelled:
                reply.exception()  # retrieved: the caller has gone
                raise asyncio.CancelledError
            return reply.result()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, serialised. Whatever goes wrong, including cancellation
        at any await in here, the connection is left outside any transaction."""
        async with self._write_lock:
            conn = self.conn
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                # Queued behind whatever the connection's thread is still running (a BEGIN or
                # COMMIT whose await was cancelled), and shielded from a second cancellation.
                await asyncio.shield(self._rollback(conn))
                raise

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        # OperationalError: no transaction was open (BEGIN failed, or COMMIT went through).
        with contextlib.suppress(sqlite3.OperationalError):
            await conn.execute("ROLLBACK")


async def _register_functions(conn: aiosqlite.Connection) -> None:
    await conn.create_function("unixepoch_now", 0, time.time, deterministic=False)


async def schema_version(conn: aiosqlite.Connection) -> int:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL)"
    )
    async with conn.execute("SELECT MAX(version) FROM schema_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def migrate(conn: aiosqlite.Connection, *, target: int | None = None) -> int:
    """Apply every migration above the current version (up to `target`); return the version."""
    await _register_functions(conn)
    current = await schema_version(conn)
    for migration in load_migrations():
        if migration.version <= current or (target is not None and migration.version > target):
            continue
        # Each migration and its version row commit together or not at all.
        await conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + migration.sql
            + f"\nINSERT INTO schema_version VALUES ({migration.version}, unixepoch_now());"
            + "\nCOMMIT;"
        )
        current = migration.version
    return current
