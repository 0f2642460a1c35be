"""Repository for call recordings. Participants come from the call log (caller and callee)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.database import Database
from appliance.storage.users import shown_name


@dataclass(frozen=True, slots=True)
class NewRecording:
    id: str
    call_id: str
    started_by: int
    object_key: str
    created_at: float


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    id: str
    call_id: str
    started_by: int
    started_by_name: str
    status: str
    object_key: str
    content_type: str | None
    size: int | None
    duration: float | None
    started_at: float | None
    ended_at: float | None
    created_at: float
    failure_reason: str | None
    caller_id: int
    caller_name: str
    callee_id: int
    callee_name: str

    def has(self, user_id: int) -> bool:
        return user_id in (self.caller_id, self.callee_id)


@dataclass(frozen=True, slots=True)
class Finished:
    """What the recorder reports for an uploaded recording."""

    content_type: str
    size: int
    duration: float
    started_at: float
    ended_at: float


_SELECT = (
    f"SELECT r.id, r.call_id, r.started_by, {shown_name('s')},"  # noqa: S608 - constant aliases
    " r.status, r.object_key, r.content_type,"
    " r.size, r.duration, r.started_at, r.ended_at, r.created_at, r.failure_reason,"
    f" c.caller_id, {shown_name('a')}, c.callee_id, {shown_name('b')} FROM recordings r"
    " JOIN calls c ON c.id = r.call_id JOIN users s ON s.id = r.started_by"
    " JOIN users a ON a.id = c.caller_id JOIN users b ON b.id = c.callee_id"
)


class RecordingRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, new: NewRecording) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO recordings (id, call_id, started_by, status, object_key, created_at)"
                " VALUES (?, ?, ?, 'processing', ?, ?)",
                (new.id, new.call_id, new.started_by, new.object_key, new.created_at),
            )

    async def get(self, recording_id: str) -> RecordingRecord | None:
        async with self._db.conn.execute(f"{_SELECT} WHERE r.id = ?", (recording_id,)) as cur:
            row = await cur.fetchone()
        return RecordingRecord(*row) if row else None

    async def of_user(self, user_id: int, limit: int = 200) -> list[RecordingRecord]:
        """Processing and ready recordings of the user's calls, newest first."""
        async with self._db.conn.execute(
            f"{_SELECT} WHERE (c.caller_id = ? OR c.callee_id = ?) AND r.status != 'failed'"
            " ORDER BY r.created_at DESC, r.id LIMIT ?",
            (user_id, user_id, limit),
        ) as cur:
            return [RecordingRecord(*r) for r in await cur.fetchall()]

    async def mark_ready(self, recording_id: str, done: Finished) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE recordings SET status = 'ready', content_type = ?, size = ?,"
                " duration = ?, started_at = ?, ended_at = ?"
                " WHERE id = ? AND status = 'processing'",
                (
                    done.content_type,
                    done.size,
                    done.duration,
                    done.started_at,
                    done.ended_at,
                    recording_id,
                ),
            )
            return cur.rowcount == 1

    async def mark_failed(self, recording_id: str, reason: str, now: float) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE recordings SET status = 'failed', failure_reason = ?,"
                " ended_at = COALESCE(ended_at, ?) WHERE id = ? AND status = 'processing'",
                (reason, now, recording_id),
            )
            return cur.rowcount == 1

    async def fail_processing(self, reason: str, now: float) -> int:
        """Every recording still processing fails (a crash, or the recorder went away)."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE recordings SET status = 'failed', failure_reason = ?,"
                " ended_at = COALESCE(ended_at, ?) WHERE status = 'processing'",
                (reason, now),
            )
            return cur.rowcount

    async def delete(self, recording_id: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
            return cur.rowcount == 1

    async def expired(self, before: float, limit: int = 500) -> list[RecordingRecord]:
        """Ready and failed recordings created before `before`, oldest first."""
        async with self._db.conn.execute(
            f"{_SELECT} WHERE r.status IN ('ready', 'failed') AND r.created_at < ?"
            " ORDER BY r.created_at LIMIT ?",
            (before, limit),
        ) as cur:
            return [RecordingRecord(*r) for r in await cur.fetchall()]
