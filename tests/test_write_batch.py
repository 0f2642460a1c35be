"""`Database.write_batch`: the group-commit writer's one-round-trip transaction in its own
process, and `MessageRepository.insert_batch` on it."""

from __future__ import annotations

import asyncio
import io
import os
import pickle
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from appliance.storage.database import Database
from appliance.storage.messages import MessageRepository, NewMessage
from appliance.storage.writer_child import LENGTH, READY, serve
from appliance.storage.writer_process import WriterGoneError

# Work functions run in the writer process, so they live at module level (found by name there).


def insert_two(conn: sqlite3.Connection, values: tuple[int, int]) -> int:
    conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
    return os.getpid()


def insert_one(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))


def half_then_fail(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    conn.execute("INSERT INTO t VALUES (?)", (value,))  # UNIQUE violation


def insert_and_block(conn: sqlite3.Connection, arg: tuple[int, str, str]) -> None:
    """Insert, say so through the `entered` FIFO, then wait until `release` is written."""
    value, entered, release = arg
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    with open(entered, "w") as say:
        say.write("in")
    with open(release) as wait:
        wait.read()


def unpicklable_result(conn: sqlite3.Connection, arg: None) -> object:
    return lambda: None


def stray_stop(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    next(iter(()))  # StopIteration, which an asyncio future cannot hold


class Picky(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickles, but unpickles as Picky(msg): fails
        super().__init__(f"{a}/{b}")


def picky_error(conn: sqlite3.Connection, value: int) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    raise Picky(1, 2)


def chatty(conn: sqlite3.Connection, value: int) -> int:
    print("a stray print in a work function")  # goes to stderr, not into the replies
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    return value


def explode() -> None:
    raise ValueError("cannot be rebuilt here")


class Unreadable:
    """Pickles fine in the writer process, fails to unpickle in ours."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (explode, ())


def unreadable_result(conn: sqlite3.Connection, value: int) -> Unreadable:
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    return Unreadable()


class Gate:
    """Two FIFOs: the writer process says it is inside its transaction, then waits for us."""

    def __init__(self, folder: Path) -> None:
        self.entered, self.release = folder / "entered", folder / "release"
        os.mkfifo(self.entered)
        os.mkfifo(self.release)

    def arg(self, value: int) -> tuple[int, str, str]:
        return (value, str(self.entered), str(self.release))

    async def wait_entered(self) -> None:
        await asyncio.to_thread(self.entered.read_text)

    async def open(self) -> None:
        await asyncio.to_thread(self.release.write_text, "go")


async def started(tmp_path: Path, *, busy_timeout_ms: int = 5000) -> Database:
    db = Database(tmp_path / "app.db", busy_timeout_ms=busy_timeout_ms)
    await db.start()
    await db.conn.execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
    return db


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A started database with table `t`, stopped (writer process included) after the test."""
    started_db = await started(tmp_path)
    yield started_db
    await started_db.stop()


async def values(db: Database) -> list[int]:
    rows = await db.conn.execute_fetchall("SELECT v FROM t ORDER BY v")
    return [int(r[0]) for r in rows]


async def test_commits_and_returns_the_result(db: Database) -> None:
    pid = await db.write_batch(insert_two, (1, 2))
    assert pid == db.writer_pid != os.getpid()  # ran in the writer process
    assert await values(db) == [1, 2]  # visible to the other connection: committed


async def test_an_error_rolls_the_whole_batch_back(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await db.write_batch(half_then_fail, 1)
    assert await values(db) == []
    with pytest.raises(RuntimeError, match="result cannot be sent"):  # a lambda cannot travel
        await db.write_batch(unpicklable_result, None)
    await db.write_batch(insert_one, 3)  # the same process goes on
    assert await values(db) == [3]


async def test_a_cancelled_caller_leaves_the_batch_to_finish_first(tmp_path: Path) -> None:
    # No busy timeout: a write that got past the lock while the writer's transaction is open
    # would fail at once with "database is locked" instead of quietly waiting for it.
    db = await started(tmp_path, busy_timeout_ms=0)
    gate = Gate(tmp_path)
    try:
        batch = asyncio.create_task(db.write_batch(insert_and_block, gate.arg(1)))
        await gate.wait_entered()
        batch.cancel()
        await asyncio.sleep(0)
        batch.cancel()  # twice: the second one lands while the first is being waited out

        async def other_write() -> None:
            async with db.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (2)")

        other = asyncio.create_task(other_write())
        await asyncio.sleep(0.05)  # give the other write every chance to jump the queue
        assert not other.done()  # the lock is still held for the writer's transaction
        await gate.open()
        with pytest.raises(asyncio.CancelledError):
            await batch
        await asyncio.wait_for(other, 10)
        assert await values(db) == [1, 2]  # the writer committed; no "database is locked"
        await db.write_batch(insert_one, 3)  # its reply was consumed, not left for this call
        assert await values(db) == [1, 2, 3]
    finally:
        await db.stop()


async def test_stop_lets_a_batch_in_flight_commit(tmp_path: Path) -> None:
    db = await started(tmp_path)
    gate = Gate(tmp_path)
    try:
        writer = db.writer_pid
        assert writer is not None
        batch = asyncio.create_task(db.write_batch(insert_and_block, gate.arg(7)))
        await gate.wait_entered()
        stopping = asyncio.create_task(db.stop())
        await gate.open()
        await asyncio.wait_for(asyncio.gather(batch, stopping), 10)
        with sqlite3.connect(tmp_path / "app.db") as check:
            assert check.execute("SELECT v FROM t").fetchall() == [(7,)]
        assert not Path(f"/proc/{writer}").exists()  # the writer process has exited
        with pytest.raises(RuntimeError):
            await db.write_batch(insert_one, 8)
    finally:
        await db.stop()


async def test_a_dead_writer_fails_its_batch_and_the_next_one_gets_a_new_process(
    db: Database, tmp_path: Path
) -> None:
    gate = Gate(tmp_path)
    first = db.writer_pid
    assert first is not None
    batch = asyncio.create_task(db.write_batch(insert_and_block, gate.arg(1)))
    await gate.wait_entered()
    os.kill(first, signal.SIGKILL)  # dies inside its transaction
    with pytest.raises(WriterGoneError):
        await asyncio.wait_for(batch, 10)
    await db.write_batch(insert_one, 2)
    assert db.writer_pid not in (None, first)
    assert await values(db) == [2]  # the dead one's insert was rolled back
    with sqlite3.connect(tmp_path / "app.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


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
        count = list(await db.conn.execute_fetchall("SELECT count(*) FROM messages"))
        assert count[0][0] == 7
    finally:
        await db.stop()


async def test_the_writer_outlasts_a_sigterm_and_leaves_when_web_stops(db: Database) -> None:
    """Supervisors signal the whole group on stop; the writer waits for `web` to close it."""
    pid = db.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    await db.write_batch(insert_one, 1)  # answered, by the same process
    assert db.writer_pid == pid
    await db.stop()
    assert not Path(f"/proc/{pid}").exists()


async def test_errors_that_cannot_travel_as_they_are_still_arrive_as_errors(db: Database) -> None:
    """A StopIteration (no future can hold one) and an exception that does not unpickle: each
    batch is rolled back and its caller gets a RuntimeError; the same process goes on, and a
    print() in a work function does not disturb the replies."""
    pid = db.writer_pid
    with pytest.raises(RuntimeError, match="StopIteration"):
        await db.write_batch(stray_stop, 1)
    with pytest.raises(RuntimeError, match="Picky"):
        await db.write_batch(picky_error, 2)
    assert await db.write_batch(chatty, 3) == 3
    assert db.writer_pid == pid
    assert await values(db) == [3]


async def test_without_a_batch_writer_there_is_no_process(tmp_path: Path) -> None:
    db = Database(tmp_path / "app.db", batch_writer=False)
    await db.start()
    try:
        assert db.writer_pid is None
        with pytest.raises(RuntimeError, match="no batch writer"):
            await db.write_batch(insert_one, 1)
    finally:
        await db.stop()


async def test_an_unreadable_reply_replaces_the_writer_process(db: Database) -> None:
    first = db.writer_pid
    with pytest.raises(WriterGoneError):
        await db.write_batch(unreadable_result, 1)
    await db.write_batch(insert_one, 2)
    assert db.writer_pid not in (None, first)
    assert await values(db) == [1, 2]  # the first one had committed before its reply


def frame(payload: bytes) -> bytes:
    return LENGTH.pack(len(payload)) + payload


def replies(out: io.BytesIO) -> list[tuple[bool, object]]:
    data, found = out.getvalue(), []
    while data:
        (size,) = LENGTH.unpack(data[: LENGTH.size])
        found.append(pickle.loads(data[LENGTH.size : LENGTH.size + size]))  # noqa: S301
        data = data[LENGTH.size + size :]
    return found


def test_the_writer_answers_a_bad_request_with_an_error_and_goes_on(tmp_path: Path) -> None:
    """The child's loop on its own: garbage, an unknown function, a good request, then a frame
    cut short (its parent died mid-write), after which it returns without writing anything."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
    unknown = b"(cno_such_module\nwork\nI1\nt."  # protocol 0: (no_such_module.work, 1)
    requests = (
        frame(b"not a pickle")
        + frame(pickle.dumps((None, 1)))  # not callable
        + frame(unknown)
        + frame(pickle.dumps((insert_one, 5)))
        + frame(pickle.dumps((insert_one, 6)))[:-3]
    )
    out = io.BytesIO()
    serve(str(path), "FULL", 1000, io.BytesIO(requests), out)
    answers = replies(out)
    assert answers[0] == (True, READY)
    assert [ok for ok, _ in answers[1:]] == [False, False, False, True]
    assert all(isinstance(error, Exception) for _, error in answers[1:4])
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT v FROM t").fetchall() == [(5,)]
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
