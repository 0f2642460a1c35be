"""Repository for invitation links. Only a token's SHA-256 is stored."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from appliance.storage.database import Database
from appliance.storage.users import (
    DELETED_DISPLAY_NAME,
    UserRecord,
    insert_user,
)

_SELECT = (
    "SELECT i.id, i.max_uses, i.uses, i.expires_at, i.is_admin, i.note, i.created_by,"
    " CASE WHEN u.deleted_at IS NULL THEN u.username ELSE ? END, i.created_at, i.revoked_at"
    " FROM invitations i LEFT JOIN users u ON u.id = i.created_by"
)


@dataclass(frozen=True, slots=True)
class InvitationRecord:
    id: int
    max_uses: int
    uses: int
    expires_at: float
    is_admin: bool
    note: str
    created_by: int | None
    creator_name: str | None
    created_at: float
    revoked_at: float | None

    def state(self, now: float) -> str:
        """`revoked`, `used_up`, `expired` or `active` (in that order of precedence)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.uses >= self.max_uses:
            return "used_up"
        if self.expires_at <= now:
            return "expired"
        return "active"


class InvitationUnusable(Exception):
    """The link was revoked, used up or expired by the time it was taken."""


def _record(row: aiosqlite.Row) -> InvitationRecord:
    return InvitationRecord(
        id=row[0],
        max_uses=row[1],
        uses=row[2],
        expires_at=row[3],
        is_admin=bool(row[4]),
        note=row[5],
        created_by=row[6],
        creator_name=row[7],
        created_at=row[8],
        revoked_at=row[9],
    )


class InvitationRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        token_hash: str,
        *,
        max_uses: int,
        expires_at: float,
        is_admin: bool,
        note: str,
        created_by: int,
        now: float,
    ) -> InvitationRecord:
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO invitations (token_hash, max_uses, expires_at, is_admin, note,"
                " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_hash, max_uses, expires_at, int(is_admin), note, created_by, now),
            )
            invitation_id = cur.lastrowid
        assert invitation_id is not None
        found = await self.get(invitation_id)
        assert found is not None
        return found

    async def get(self, invitation_id: int) -> InvitationRecord | None:
        async with self._db.conn.execute(
            _SELECT + " WHERE i.id = ?", (DELETED_DISPLAY_NAME, invitation_id)
        ) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def by_hash(self, token_hash: str) -> InvitationRecord | None:
        async with self._db.conn.execute(
            _SELECT + " WHERE i.token_hash = ?", (DELETED_DISPLAY_NAME, token_hash)
        ) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def list_all(self) -> list[InvitationRecord]:
        """Newest first."""
        async with self._db.conn.execute(
            _SELECT + " ORDER BY i.created_at DESC, i.id DESC", (DELETED_DISPLAY_NAME,)
        ) as cur:
            return [_record(r) for r in await cur.fetchall()]

    async def revoke(self, invitation_id: int, now: float) -> bool:
        """Revoke (idempotent: an already revoked link keeps its time). False: no such link."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE invitations SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, invitation_id),
            )
            async with conn.execute(
                "SELECT 1 FROM invitations WHERE id = ?", (invitation_id,)
            ) as cur:
                return await cur.fetchone() is not None

    async def accept(
        self,
        invitation_id: int,
        username: str,
        password_hash: str,
        *,
        is_admin: bool,
        now: float,
    ) -> UserRecord:
        """Take one use of the link and create the account, in one transaction: the use count
        goes up in SQL only while it is below `max_uses` (so concurrent accepts of a 1-use link
        make exactly one account), and a taken name (`UsernameTaken`) gives the use back.
        `InvitationUnusable` when no use was left."""
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE invitations SET uses = uses + 1 WHERE id = ? AND uses < max_uses"
                " AND revoked_at IS NULL AND expires_at > ?",
                (invitation_id, now),
            )
            if cur.rowcount != 1:
                raise InvitationUnusable(invitation_id)
            return await insert_user(
                conn,
                username,
                password_hash,
                is_admin=is_admin,
                must_change_password=False,
                now=now,
            )
