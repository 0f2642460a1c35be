"""Numbered migrations: an empty database and one at every earlier version reach the latest."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiosqlite
import pytest

from appliance.storage.database import Database, load_migrations, migrate, schema_version
from appliance.storage.messages import keys_query

LATEST = len(load_migrations())


async def schema_of(path: Path) -> list[tuple[str, str]]:
    async with (
        aiosqlite.connect(path) as conn,
        conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
        ) as cur,
    ):
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_empty_database_migrates_to_latest(tmp_path: Path) -> None:
    db = Database(tmp_path / "a.db")
    await db.start()
    assert await schema_version(db.conn) == LATEST
    async with db.conn.execute("PRAGMA journal_mode") as cur:
        row = await cur.fetchone()
        assert row is not None and row[0] == "wal"
    async with db.conn.execute("PRAGMA foreign_keys") as cur:
        row = await cur.fetchone()
        assert row is not None and row[0] == 1
    async with db.conn.execute("PRAGMA synchronous") as cur:
        row = await cur.fetchone()
        assert row is not None and row[0] == 2  # FULL
    await db.stop()


@pytest.mark.parametrize("start", range(LATEST))
async def test_every_earlier_version_migrates_to_the_same_schema(
    tmp_path: Path, start: int
) -> None:
    fresh = tmp_path / "fresh.db"
    db = Database(fresh)
    await db.start()
    await db.stop()

    old = tmp_path / "old.db"
    async with aiosqlite.connect(old, isolation_level=None) as conn:
        assert await migrate(conn, target=start) == start
        if start >= 1:
            await conn.execute(
                "INSERT INTO users (username, password_hash, is_admin, created_at)"
                " VALUES ('keep', 'h', 0, 1)"
            )
    db = Database(old)
    await db.start()
    assert await schema_version(db.conn) == LATEST
    if start >= 1:
        async with db.conn.execute("SELECT username FROM users") as cur:
            assert [r[0] for r in await cur.fetchall()] == ["keep"]
    await db.stop()
    assert await schema_of(old) == await schema_of(fresh)


async def test_migration_is_idempotent(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "x.db", isolation_level=None) as conn:
        assert await migrate(conn) == LATEST
        assert await migrate(conn) == LATEST
        async with conn.execute("SELECT COUNT(*) FROM schema_version") as cur:
            row = await cur.fetchone()
            assert row is not None and row[0] == LATEST


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, LATEST + 1))


async def test_cancelled_transaction_leaves_connection_clean(tmp_path: Path) -> None:
    db = Database(tmp_path / "c.db")
    await db.start()

    async def write_forever() -> None:
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO users (username, password_hash, created_at) VALUES ('x', 'h', 1)"
            )
            await asyncio.Event().wait()  # cancelled here, mid-transaction

    for _ in range(3):
        task = asyncio.create_task(write_forever())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    # Cancelled right at BEGIN too.
    for _ in range(20):
        task = asyncio.create_task(write_forever())
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not db.conn.in_transaction
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('y', 'h', 1)"
        )
    async with db.conn.execute("SELECT username FROM users") as cur:
        assert [r[0] for r in await cur.fetchall()] == ["y"]
    await db.stop()


async def test_message_lookup_by_client_id_uses_the_index(tmp_path: Path) -> None:
    """The group-commit writer's idempotency lookup must not scan the messages table."""
    db = Database(tmp_path / "q.db")
    await db.start()
    query = "EXPLAIN QUERY PLAN " + keys_query(2)
    async with db.conn.execute(query, (1, 1, "a", 1, 1, "b")) as cur:
        detail = " | ".join(str(r[3]) for r in await cur.fetchall())
    assert "SCAN m" not in detail, detail
    assert "USING INDEX sqlite_autoindex_messages_1" in detail, detail
    await db.stop()
