"""`Database.write_batch`: the group-commit writer's one-hop transaction on its own thread, and
`MessageRepository.insert_batch` on it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.storage.database import Database
from appliance.storage.messages import MessageRepository, NewMessage


async def started(tmp_path: Path) -> Database:
    db = Database(tmp_path / "app.db")
    await db.start()
    await db.conn.execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
    return db


def blocking_insert(
    value: int,
) -> tuple[Callable[[sqlite3.Connection], None], threading.Event, threading.Event]:
    """Work that inserts `value`, says it has (`entered`), then waits for `release`."""
    entered, release = threading.Event(), threading.Event()

    def work(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        entered.set()
        release.wait(10)

    return work, entered, release


async def values(db: Database) -> list[int]:
    rows = await db.conn.execute_fetchall("SELECT v FROM t ORDER BY v")
    return [int(r[0]) for r in rows]


async def test_commits_and_returns_the_result(tmp_path: Path) -> None:
    db = await started(tmp_path)
    try:

        def work(conn: sqlite3.Connection) -> int:
            conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            return threading.get_ident()

        thread = await db.write_batch(work)
        assert thread != threading.get_ident()  # ran on the writer thread
        assert await values(db) == [1, 2]  # visible to the other connection: committed
    finally:
        await db.stop()


async def test_an_error_rolls_the_whole_batch_back(tmp_path: Path) -> None:
    db = await started(tmp_path)
    try:

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute("INSERT INTO t VALUES (1)")  # UNIQUE violation

        with pytest.raises(sqlite3.IntegrityError):
            await db.write_batch(half_then_fail)
        assert await values(db) == []
        await db.write_batch(lambda conn: conn.execute("INSERT INTO t VALUES (3)"))
        assert await values(db) == [3]
    finally:
        await db.stop()


async def test_a_cancelled_caller_leaves_the_batch_to_finish_first(tmp_path: Path) -> None:
    db = await started(tmp_path)
    try:
        slow, entered, release = blocking_insert(1)
        batch = asyncio.create_task(db.write_batch(slow))
        await asyncio.to_thread(entered.wait, 10)
        batch.cancel()

        async def other_write() -> None:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (2)")

        other = asyncio.create_task(other_write())
        await asyncio.sleep(0.05)  # give the other write every chance to jump the queue
        assert not other.done()  # the lock is still held for the thread's transaction
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await batch
        await asyncio.wait_for(other, 10)
        assert await values(db) == [1, 2]  # the thread committed; no "database is locked"
    finally:
        await db.stop()


async def test_stop_lets_a_batch_in_flight_commit(tmp_path: Path) -> None:
    db = await started(tmp_path)
    slow, entered, release = blocking_insert(7)
    batch = asyncio.create_task(db.write_batch(slow))
    await asyncio.to_thread(entered.wait, 10)
    stopping = asyncio.create_task(db.stop())
    release.set()
    await asyncio.wait_for(asyncio.gather(batch, stopping), 10)
    with sqlite3.connect(tmp_path / "app.db") as check:
        assert check.execute("SELECT v FROM t").fetchall() == [(7,)]
    with pytest.raises(RuntimeError):
        await db.write_batch(lambda conn: None)


async def test_insert_batch_ids_follow_the_rows_and_resends_keep_theirs(tmp_path: Path) -> None:
    db = Database(tmp_path / "app.db")
    await db.start()
    try:
        await db.conn.execute(
            "INSERT INTO users (username, password_hash, is_admin, created_at)"
            " VALUES ('ann', 'x', 0, 0)"
        )
        await db.conn.execute("INSERT INTO rooms (kind, name, created_at) VALUES ('group', 'g', 0)")
        repo = MessageRepository(db)

        def new(cid: str, text: str) -> NewMessage:
            return NewMessage(1, 1, cid, text, 1.0, sender_name="ann")

        # All new: ids come from the row count, in VALUES order (the fast path).
        first = await repo.insert_batch([new(f"c{i}", f"text {i}") for i in range(5)])
        assert [created for _, created in first] == [True] * 5
        for record, _ in first:
            stored = await repo.get(record.id)
            assert stored is not None
            assert (stored.client_msg_id, stored.text) == (record.client_msg_id, record.text)
        # A resend, a new one twice, another new one: read back by key (the fallback).
        mixed = await repo.insert_batch(
            [new("c2", "again"), new("n1", "one"), new("n1", "one dup"), new("n2", "two")]
        )
        assert mixed[0] == (first[2][0], False)  # the original row, text unchanged
        assert mixed[1][1] is True and mixed[2] == (mixed[1][0], False)
        assert mixed[3][1] is True
        for record, _ in mixed:
            stored = await repo.get(record.id)
            assert stored is not None and stored.client_msg_id == record.client_msg_id
            assert stored.text == record.text
        count = await db.conn.execute_fetchall("SELECT count(*) FROM messages")
        assert count[0][0] == 7
    finally:
        await db.stop()
