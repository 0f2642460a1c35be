"""Repository for user accounts."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from appliance.storage.database import Database


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool
    created_at: float
    last_seen: float | None


class UsernameTaken(Exception):
    pass


def _row(row: aiosqlite.Row) -> UserRecord:
    return UserRecord(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        last_seen=row["last_seen"],
    )


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, username: str, password_hash: str, *, is_admin: bool, now: float
    ) -> UserRecord:
        try:
            async with self._db.transaction() as conn:
                cur = await conn.execute(
                    "INSERT INTO users (username, password_hash, is_admin, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (username, password_hash, int(is_admin), now),
                )
                user_id = cur.lastrowid
        except sqlite3.IntegrityError:
            raise UsernameTaken(username) from None
        assert user_id is not None
        return UserRecord(user_id, username, password_hash, is_admin, now, None)

    async def by_username(self, username: str) -> UserRecord | None:
        async with self._db.conn.execute(
            "SELECT id, username, password_hash, is_admin, created_at, last_seen"
            " FROM users WHERE username = ?",
            (username,),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def by_id(self, user_id: int) -> UserRecord | None:
        async with self._db.conn.execute(
            "SELECT id, username, password_hash, is_admin, created_at, last_seen"
            " FROM users WHERE id = ?",
            (user_id,),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def list_all(self) -> list[UserRecord]:
        async with self._db.conn.execute(
            "SELECT id, username, password_hash, is_admin, created_at, last_seen"
            " FROM users ORDER BY username COLLATE NOCASE"
        ) as cur:
            rows = await cur.fetchall()
        return [_row(r) for r in rows]

    async def count(self) -> int:
        async with self._db.conn.execute("SELECT COUNT(*) FROM users") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def update_password(self, user_id: int, password_hash: str) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

    async def set_last_seen(self, user_id: int, when: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("UPDATE users SET last_seen = ? WHERE id = ?", (when, user_id))
