"""Repository for chat rooms and their members."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from appliance.storage.database import Database
from appliance.storage.users import DELETED_DISPLAY_NAME


@dataclass(frozen=True, slots=True)
class RoomRecord:
    id: int
    kind: str
    name: str | None
    created_by: int | None
    created_at: float


@dataclass(frozen=True, slots=True)
class MemberRecord:
    user_id: int
    username: str
    role: str
    last_read_id: int


@dataclass(frozen=True, slots=True)
class RoomSummary:
    room: RoomRecord
    unread: int
    last_message_id: int | None


def direct_key(a: int, b: int) -> str:
    low, high = sorted((a, b))
    return f"{low}:{high}"


class RoomRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, room_id: int) -> RoomRecord | None:
        async with self._db.conn.execute(
            "SELECT id, kind, name, created_by, created_at FROM rooms WHERE id = ?", (room_id,)
        ) as cur:
            row = await cur.fetchone()
        return RoomRecord(*row) if row else None

    async def get_or_create_direct(self, a: int, b: int, now: float) -> tuple[RoomRecord, bool]:
        key = direct_key(a, b)
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT id, kind, name, created_by, created_at FROM rooms WHERE direct_key = ?",
                (key,),
            ) as cur:
                row = await cur.fetchone()
            if row:
                return RoomRecord(*row), False
            cur2 = await conn.execute(
                "INSERT INTO rooms (kind, direct_key, created_by, created_at)"
                " VALUES ('direct', ?, ?, ?)",
                (key, a, now),
            )
            room_id = cur2.lastrowid
            assert room_id is not None
            await conn.executemany(
                "INSERT INTO room_members (room_id, user_id, role, joined_at)"
                " VALUES (?, ?, 'member', ?)",
                [(room_id, uid, now) for uid in sorted({a, b})],
            )
        return RoomRecord(room_id, "direct", None, a, now), True

    async def create_group(
        self, name: str, creator: int, members: list[int], now: float
    ) -> RoomRecord:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO rooms (kind, name, created_by, created_at) VALUES ('group', ?, ?, ?)",
                (name, creator, now),
            )
            room_id = cur.lastrowid
            assert room_id is not None
            rows = [(room_id, creator, "admin", now)]
            rows += [(room_id, uid, "member", now) for uid in sorted(set(members) - {creator})]
            await conn.executemany(
                "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)",
                rows,
            )
        return RoomRecord(room_id, "group", name, creator, now)

    async def add_member(self, room_id: int, user_id: int, now: float) -> bool:
        try:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    "INSERT OR IGNORE INTO room_members (room_id, user_id, role, joined_at)"
                    " VALUES (?, ?, 'member', ?)",
                    (room_id, user_id, now),
                )
                return cur.rowcount == 1
        except sqlite3.IntegrityError:
            return False

    async def remove_member(self, room_id: int, user_id: int) -> bool:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
            )
            return cur.rowcount == 1

    async def role(self, room_id: int, user_id: int) -> str | None:
        async with self._db.conn.execute(
            "SELECT role FROM room_members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def members(self, room_id: int) -> list[MemberRecord]:
        async with self._db.conn.execute(
            "SELECT m.user_id, CASE WHEN u.deleted_at IS NULL THEN u.username ELSE ? END,"
            " m.role, m.last_read_id FROM room_members m"
            " JOIN users u ON u.id = m.user_id WHERE m.room_id = ? ORDER BY u.username",
            (DELETED_DISPLAY_NAME, room_id),
        ) as cur:
            return [MemberRecord(*r) for r in await cur.fetchall()]

    async def member_ids(self, room_id: int) -> list[int]:
        async with self._db.conn.execute(
            "SELECT user_id FROM room_members WHERE room_id = ?", (room_id,)
        ) as cur:
            return [int(r[0]) for r in await cur.fetchall()]

    async def room_ids_of(self, user_id: int) -> list[int]:
        async with self._db.conn.execute(
            "SELECT room_id FROM room_members WHERE user_id = ?", (user_id,)
        ) as cur:
            return [int(r[0]) for r in await cur.fetchall()]

    async def summaries(self, user_id: int) -> list[RoomSummary]:
        """The user's rooms, most recently active first, with unread counts."""
        async with self._db.conn.execute(
            """
            SELECT r.id, r.kind, r.name, r.created_by, r.created_at,
                   (SELECT COUNT(*) FROM messages x
                     WHERE x.room_id = r.id AND x.id > m.last_read_id
                       AND x.sender_id != m.user_id AND x.deleted_at IS NULL) AS unread,
                   (SELECT MAX(id) FROM messages x WHERE x.room_id = r.id) AS last_id,
                   (SELECT MAX(created_at) FROM messages x WHERE x.room_id = r.id) AS last_at
              FROM room_members m JOIN rooms r ON r.id = m.room_id
             WHERE m.user_id = ?
             ORDER BY MAX(COALESCE(last_at, 0), r.created_at) DESC, r.id DESC
            """,
            (user_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [RoomSummary(RoomRecord(*r[:5]), int(r[5]), r[6]) for r in rows]

    async def mark_read(self, room_id: int, user_id: int, message_id: int) -> tuple[int, bool]:
        """Move the read position forward (never back). Returns the position now and whether
        this call moved it."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE room_members SET last_read_id = ?"
                " WHERE room_id = ? AND user_id = ? AND last_read_id < ?",
                (message_id, room_id, user_id, message_id),
            )
            moved = cur.rowcount == 1
            async with conn.execute(
                "SELECT last_read_id FROM room_members WHERE room_id = ? AND user_id = ?",
                (room_id, user_id),
            ) as cur2:
                row = await cur2.fetchone()
        return (int(row[0]) if row else 0), moved

    async def unread(self, room_id: int, user_id: int) -> int:
        async with self._db.conn.execute(
            "SELECT COUNT(*) FROM messages x JOIN room_members m"
            " ON m.room_id = x.room_id AND m.user_id = ?"
            " WHERE x.room_id = ? AND x.id > m.last_read_id AND x.sender_id != ?"
            " AND x.deleted_at IS NULL",
            (user_id, room_id, user_id),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
