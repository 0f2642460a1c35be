"""Repository for user accounts.

A deleted account keeps its row (its messages point at it) with `deleted_at` set and its name
changed to `DELETED_NAME_PREFIX<id>`, which the username pattern never matches, so the name is
free again. Every lookup here but `any_by_id` leaves deleted accounts out.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import aiosqlite

from appliance.storage.database import Database

#: What chat payloads and lists show instead of a deleted account's name.
DELETED_DISPLAY_NAME = "Deleted account"


def shown_name(alias: str) -> str:
    """SQL for the name to show of the users row `alias`: "Deleted account" once deleted."""
    return (
        f"CASE WHEN {alias}.deleted_at IS NULL THEN {alias}.username"
        f" ELSE '{DELETED_DISPLAY_NAME}' END"
    )


#: A deleted row's username is this plus its id; '~' can never start a real username.
DELETED_NAME_PREFIX = "~deleted-"

_COLUMNS = (
    "id, username, password_hash, is_admin, created_at, last_seen,"
    " disabled, must_change_password, deleted_at"
)
# Enabled, not deleted admins other than the given id.
_OTHER_ADMINS = (
    "SELECT COUNT(*) FROM users"
    " WHERE is_admin = 1 AND disabled = 0 AND deleted_at IS NULL AND id != ?"
)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    password_hash: str
    is_admin: bool
    created_at: float
    last_seen: float | None
    disabled: bool = False
    must_change_password: bool = False
    deleted_at: float | None = None


class UsernameTaken(Exception):
    pass


class UserNotFound(Exception):
    pass


class LastAdmin(Exception):
    """The change would leave no enabled admin."""


def _row(row: aiosqlite.Row) -> UserRecord:
    return UserRecord(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        last_seen=row["last_seen"],
        disabled=bool(row["disabled"]),
        must_change_password=bool(row["must_change_password"]),
        deleted_at=row["deleted_at"],
    )


async def insert_user(
    conn: aiosqlite.Connection,
    username: str,
    password_hash: str,
    *,
    is_admin: bool,
    must_change_password: bool,
    now: float,
) -> UserRecord:
    """Insert inside the caller's transaction; `UsernameTaken` when the name is in use."""
    try:
        cur = await conn.execute(
            "INSERT INTO users (username, password_hash, is_admin, must_change_password,"
            " created_at) VALUES (?, ?, ?, ?, ?)",
            (username, password_hash, int(is_admin), int(must_change_password), now),
        )
    except sqlite3.IntegrityError:
        raise UsernameTaken(username) from None
    user_id = cur.lastrowid
    assert user_id is not None
    return UserRecord(
        user_id,
        username,
        password_hash,
        is_admin,
        now,
        None,
        must_change_password=must_change_password,
    )


class UserRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        username: str,
        password_hash: str,
        *,
        is_admin: bool,
        now: float,
        must_change_password: bool = False,
    ) -> UserRecord:
        async with self._db.transaction() as conn:
            return await insert_user(
                conn,
                username,
                password_hash,
                is_admin=is_admin,
                must_change_password=must_change_password,
                now=now,
            )

    async def by_username(self, username: str) -> UserRecord | None:
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM users WHERE username = ? AND deleted_at IS NULL",  # noqa: S608
            (username,),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def by_id(self, user_id: int) -> UserRecord | None:
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM users WHERE id = ? AND deleted_at IS NULL",  # noqa: S608
            (user_id,),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def any_by_id(self, user_id: int) -> UserRecord | None:
        """Deleted accounts included."""
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM users WHERE id = ?",  # noqa: S608
            (user_id,),
        ) as cur:
            row = await cur.fetchone()
        return _row(row) if row else None

    async def list_all(self) -> list[UserRecord]:
        async with self._db.conn.execute(
            f"SELECT {_COLUMNS} FROM users WHERE deleted_at IS NULL"  # noqa: S608
            " ORDER BY username COLLATE NOCASE"
        ) as cur:
            rows = await cur.fetchall()
        return [_row(r) for r in rows]

    async def count(self) -> int:
        async with self._db.conn.execute(
            "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL"
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def update_password(
        self, user_id: int, password_hash: str, *, must_change_password: bool | None = None
    ) -> None:
        async with self._db.transaction() as conn:
            if must_change_password is None:
                await conn.execute(
                    "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
                )
            else:
                await conn.execute(
                    "UPDATE users SET password_hash = ?, must_change_password = ? WHERE id = ?",
                    (password_hash, int(must_change_password), user_id),
                )

    async def set_last_seen(self, user_id: int, when: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("UPDATE users SET last_seen = ? WHERE id = ?", (when, user_id))

    async def _guarded_change(
        self, user_id: int, *, leaves_admin_role: bool, sql: str, params: tuple[object, ...]
    ) -> UserRecord:
        """Run `sql` on a live account unless it is an enabled admin, `leaves_admin_role`, and
        no other enabled admin exists; in one transaction, so two admins demoting each other at
        once cannot both succeed."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE id = ? AND deleted_at IS NULL",  # noqa: S608
                (user_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                raise UserNotFound(user_id)
            user = _row(row)
            if leaves_admin_role and user.is_admin and not user.disabled:
                async with conn.execute(_OTHER_ADMINS, (user_id,)) as cur:
                    others = await cur.fetchone()
                if others is None or int(others[0]) == 0:
                    raise LastAdmin(user_id)
            await conn.execute(sql, params)
            async with conn.execute(
                f"SELECT {_COLUMNS} FROM users WHERE id = ?",  # noqa: S608
                (user_id,),
            ) as cur:
                changed = await cur.fetchone()
        assert changed is not None
        return _row(changed)

    async def set_disabled(self, user_id: int, disabled: bool) -> UserRecord:
        """`UserNotFound`, or `LastAdmin` when disabling the last enabled admin."""
        return await self._guarded_change(
            user_id,
            leaves_admin_role=disabled,
            sql="UPDATE users SET disabled = ? WHERE id = ?",
            params=(int(disabled), user_id),
        )

    async def set_admin(self, user_id: int, is_admin: bool) -> UserRecord:
        """`UserNotFound`, or `LastAdmin` when demoting the last enabled admin."""
        return await self._guarded_change(
            user_id,
            leaves_admin_role=not is_admin,
            sql="UPDATE users SET is_admin = ? WHERE id = ?",
            params=(int(is_admin), user_id),
        )

    async def soft_delete(self, user_id: int, now: float) -> UserRecord:
        """Mark deleted, free the name, drop the password. `UserNotFound`, `LastAdmin`."""
        return await self._guarded_change(
            user_id,
            leaves_admin_role=True,
            sql="UPDATE users SET deleted_at = ?, username = ?, password_hash = '',"
            " must_change_password = 0 WHERE id = ?",
            params=(now, f"{DELETED_NAME_PREFIX}{user_id}", user_id),
        )

    async def enabled_admin_count(self) -> int:
        async with self._db.conn.execute(_OTHER_ADMINS, (0,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
