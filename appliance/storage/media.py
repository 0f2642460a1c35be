"""Repository for uploaded files."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.database import Database


@dataclass(frozen=True, slots=True)
class MediaRecord:
    id: str
    room_id: int
    uploader_id: int
    object_key: str
    filename: str
    content_type: str
    size: int
    status: str
    created_at: float
    expires_at: float


class MediaRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_pending(self, record: MediaRecord) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO media (id, room_id, uploader_id, object_key, filename,"
                " content_type, size, status, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.room_id,
                    record.uploader_id,
                    record.object_key,
                    record.filename,
                    record.content_type,
                    record.size,
                    "pending",
                    record.created_at,
                    record.expires_at,
                ),
            )

    async def get(self, media_id: str) -> MediaRecord | None:
        async with self._db.conn.execute(
            "SELECT id, room_id, uploader_id, object_key, filename, content_type, size, status,"
            " created_at, expires_at FROM media WHERE id = ?",
            (media_id,),
        ) as cur:
            row = await cur.fetchone()
        return MediaRecord(*row) if row else None

    async def mark_complete(self, media_id: str) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE media SET status = 'complete' WHERE id = ? AND status = 'pending'",
                (media_id,),
            )
            return cur.rowcount == 1

    async def delete(self, media_id: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM media WHERE id = ? AND status = 'pending'", (media_id,))

    async def expired_pending(self, now: float, limit: int = 500) -> list[MediaRecord]:
        async with self._db.conn.execute(
            "SELECT id, room_id, uploader_id, object_key, filename, content_type, size, status,"
            " created_at, expires_at FROM media WHERE status = 'pending' AND expires_at < ?"
            " ORDER BY expires_at LIMIT ?",
            (now, limit),
        ) as cur:
            return [MediaRecord(*r) for r in await cur.fetchall()]
