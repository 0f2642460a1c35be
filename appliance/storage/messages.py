"""Repository for chat messages, with the batched insert the group-commit writer uses."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not imported at run time: the writer process imports this module, lightly
    from appliance.storage.database import Database

# A deleted account's messages read as from "Deleted account" (users.DELETED_DISPLAY_NAME,
# not imported: this module stays light for the writer process).
_SELECT = (
    "SELECT m.id, m.room_id, m.sender_id,"
    " CASE WHEN u.deleted_at IS NULL THEN u.username ELSE 'Deleted account' END,"
    " m.client_msg_id, m.text,"
    " m.created_at, m.edited_at, m.deleted_at, a.id, a.filename, a.content_type, a.size"
    " FROM messages m JOIN users u ON u.id = m.sender_id LEFT JOIN media a ON a.id = m.media_id"
)


@dataclass(frozen=True, slots=True)
class Attachment:
    media_id: str
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: int
    room_id: int
    sender_id: int
    sender_name: str
    client_msg_id: str
    text: str
    created_at: float
    edited_at: float | None
    deleted_at: float | None
    attachment: Attachment | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    room_id: int
    sender_id: int
    client_msg_id: str
    text: str
    created_at: float
    media_id: str | None = None
    sender_name: str = ""

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.room_id, self.sender_id, self.client_msg_id)


@functools.lru_cache(maxsize=512)
def insert_query(count: int) -> str:
    """Insert `count` messages in one statement; resends (same key) are skipped."""
    values = ",".join("(?, ?, ?, ?, ?, ?)" for _ in range(count))
    return (  # only placeholders are formatted in; the values travel as parameters
        "INSERT INTO messages (room_id, sender_id, client_msg_id, text, created_at, media_id)"  # noqa: S608
        f" VALUES {values} ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING"
    )


@functools.lru_cache(maxsize=512)
def keys_query(count: int) -> str:
    """Messages by (room, sender, client id), each found through the unique index. (A row-value
    `IN (VALUES ...)` would make SQLite scan the whole table for every batch.)"""
    values = ",".join("(?, ?, ?)" for _ in range(count))
    return f"WITH k(room_id, sender_id, client_msg_id) AS (VALUES {values}) " + _SELECT.replace(
        " FROM messages m ",
        " FROM k JOIN messages m ON m.room_id = k.room_id"
        " AND m.sender_id = k.sender_id AND m.client_msg_id = k.client_msg_id ",
    )


def _record(row: Sequence[Any]) -> MessageRecord:
    attachment = Attachment(row[9], row[10], row[11], row[12]) if row[9] is not None else None
    return MessageRecord(
        id=row[0],
        room_id=row[1],
        sender_id=row[2],
        sender_name=row[3],
        client_msg_id=row[4],
        text=row[5],
        created_at=row[6],
        edited_at=row[7],
        deleted_at=row[8],
        attachment=attachment,
    )


class MessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert_batch(self, items: list[NewMessage]) -> list[tuple[MessageRecord, bool]]:
        """Insert many messages in one transaction. Returns, per item, the stored message and
        whether this call created it (False: the same client_msg_id was already stored).

        The transaction runs in the database's writer process (`Database.write_batch`); only
        plain rows cross to it (`store_rows`), and the records are built here."""
        first: dict[tuple[int, int, str], NewMessage] = {}
        for item in items:
            first.setdefault(item.key, item)
        rows = [
            (m.room_id, m.sender_id, m.client_msg_id, m.text, m.created_at, m.media_id)
            for m in first.values()
        ]
        top, all_new, reread = await self._db.write_batch(store_rows, rows)
        return _results(items, first, top, all_new, reread)

    async def get(self, message_id: int) -> MessageRecord | None:
        async with self._db.conn.execute(_SELECT + " WHERE m.id = ?", (message_id,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def history(self, room_id: int, before: int | None, limit: int) -> list[MessageRecord]:
        """Newest first, strictly older than `before` when given."""
        async with self._db.conn.execute(
            _SELECT + " WHERE m.room_id = ? AND m.id < ? ORDER BY m.id DESC LIMIT ?",
            (room_id, before if before is not None else 2**63 - 1, limit),
        ) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def after(self, room_id: int, after_id: int, limit: int) -> list[MessageRecord]:
        """Oldest first, strictly newer than `after_id`, deleted ones left out."""
        async with self._db.conn.execute(
            _SELECT + " WHERE m.room_id = ? AND m.id > ? AND m.deleted_at IS NULL"
            " ORDER BY m.id ASC LIMIT ?",
            (room_id, after_id, limit),
        ) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def last(self, room_id: int) -> MessageRecord | None:
        found = await self.history(room_id, None, 1)
        return found[0] if found else None

    async def edit(
        self, message_id: int, sender_id: int, text: str, now: float
    ) -> MessageRecord | None:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE messages SET text = ?, edited_at = ?"
                " WHERE id = ? AND sender_id = ? AND deleted_at IS NULL",
                (text, now, message_id, sender_id),
            )
            changed = cur.rowcount == 1
        return await self.get(message_id) if changed else None

    async def delete(self, message_id: int, sender_id: int, now: float) -> MessageRecord | None:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE messages SET text = '', deleted_at = ?"
                " WHERE id = ? AND sender_id = ? AND deleted_at IS NULL",
                (now, message_id, sender_id),
            )
            changed = cur.rowcount == 1
        return await self.get(message_id) if changed else None


Row = tuple[int, int, str, str, float, str | None]  # the columns of `insert_query`, per message
Stored = tuple[Any, ...]  # the columns of `_SELECT`


def store_rows(conn: sqlite3.Connection, rows: list[Row]) -> tuple[int, bool, list[Stored]]:
    """`insert_batch`'s work, in the writer process inside its transaction. `rows` have distinct
    keys. Returns the largest id before the batch, whether every row went in, and the stored rows
    (`_SELECT`'s columns) the parent cannot build on its own.

    The new ids are not read back (RETURNING would hand them over one row at a time) but derived:
    SQLite gives a new row the largest id + 1, so when all `n` rows went in and the last id is
    `top + n`, they hold top+1 .. top+n in VALUES order. Otherwise (resends in the batch) every
    key is read back, and the rows with an id above `top` are this batch's. File messages are
    always read back, for their attachment's columns."""
    params = [v for row in rows for v in row]
    (top,) = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()
    cursor = conn.execute(insert_query(len(rows)), params)
    all_new = cursor.rowcount == len(rows) and cursor.lastrowid == top + len(rows)
    reread = [row[:3] for row in rows if not all_new or row[5] is not None]
    stored: list[Stored] = []
    if reread:
        keys = [v for key in reread for v in key]
        stored = conn.execute(keys_query(len(reread)), keys).fetchall()
    return top, all_new, stored


def _results(
    items: list[NewMessage],
    first: dict[tuple[int, int, str], NewMessage],
    top: int,
    all_new: bool,
    reread: list[Stored],
) -> list[tuple[MessageRecord, bool]]:
    """Per item, the stored message and whether this batch created it, from `store_rows`'s
    answer."""
    stored: dict[tuple[int, int, str], MessageRecord] = {}
    for row in reread:
        record = _record(row)
        stored[(record.room_id, record.sender_id, record.client_msg_id)] = record
    new_ids: dict[tuple[int, int, str], int]
    if all_new:
        new_ids = {key: top + 1 + i for i, key in enumerate(first)}
    else:
        new_ids = {key: r.id for key, r in stored.items() if r.id > top}
    created: dict[tuple[int, int, str], MessageRecord] = {}
    for key, message_id in new_ids.items():
        item = first[key]
        created[key] = stored.get(key) or MessageRecord(
            id=message_id,
            room_id=item.room_id,
            sender_id=item.sender_id,
            sender_name=item.sender_name,
            client_msg_id=item.client_msg_id,
            text=item.text,
            created_at=item.created_at,
            edited_at=None,
            deleted_at=None,
        )
    results: list[tuple[MessageRecord, bool]] = []
    first_seen: set[tuple[int, int, str]] = set()
    for item in items:
        if item.key in created and item.key not in first_seen:
            first_seen.add(item.key)
            results.append((created[item.key], True))
        else:
            results.append((stored.get(item.key) or created[item.key], False))
    return results
