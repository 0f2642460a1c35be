"""Repository for the call log."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.database import Database
from appliance.storage.users import shown_name


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    caller_id: int
    caller_name: str
    callee_id: int
    callee_name: str
    audio: bool
    video: bool
    started_at: float
    answered_at: float | None
    ended_at: float | None
    end_reason: str | None


class CallRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def started(
        self, call_id: str, caller: int, callee: int, audio: bool, video: bool, now: float
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO calls (id, caller_id, callee_id, audio, video, started_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, caller, callee, int(audio), int(video), now),
            )

    async def answered(self, call_id: str, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE calls SET answered_at = ? WHERE id = ? AND answered_at IS NULL",
                (now, call_id),
            )

    async def ended(self, call_id: str, reason: str, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                (now, reason, call_id),
            )

    async def of_user(self, user_id: int, limit: int) -> list[CallRecord]:
        async with self._db.conn.execute(
            f"SELECT c.id, c.caller_id, {shown_name('a')}, c.callee_id, {shown_name('b')},"  # noqa: S608
            " c.audio, c.video,"
            " c.started_at, c.answered_at, c.ended_at, c.end_reason FROM calls c"
            " JOIN users a ON a.id = c.caller_id JOIN users b ON b.id = c.callee_id"
            " WHERE c.caller_id = ? OR c.callee_id = ? ORDER BY c.started_at DESC LIMIT ?",
            (user_id, user_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [
            CallRecord(r[0], r[1], r[2], r[3], r[4], bool(r[5]), bool(r[6]), *r[7:]) for r in rows
        ]

    async def close_unfinished(self, reason: str, now: float) -> None:
        """Calls left open by a crash or restart end now."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE calls SET ended_at = ?, end_reason = ? WHERE ended_at IS NULL",
                (now, reason),
            )
