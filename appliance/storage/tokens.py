"""Repository for refresh tokens and their families (one family per login)."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.storage.database import Database


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    jti: str
    family_id: str
    user_id: int
    issued_at: float
    expires_at: float
    rotated_at: float | None
    revoked_at: float | None


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_refresh(
        self, jti: str, family_id: str, user_id: int, issued_at: float, expires_at: float
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (jti, family_id, user_id, issued_at, expires_at),
            )

    async def get_refresh(self, jti: str) -> RefreshRecord | None:
        async with self._db.conn.execute(
            "SELECT jti, family_id, user_id, issued_at, expires_at, rotated_at, revoked_at"
            " FROM refresh_tokens WHERE jti = ?",
            (jti,),
        ) as cur:
            row = await cur.fetchone()
        return RefreshRecord(*row) if row else None

    async def rotate(
        self,
        old_jti: str,
        new_jti: str,
        family_id: str,
        user_id: int,
        now: float,
        expires_at: float,
    ) -> bool:
        """Mark `old_jti` rotated and record its successor, atomically.

        Returns False when the old token was already rotated or revoked (a replay).
        """
        async with self._db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE refresh_tokens SET rotated_at = ?"
                " WHERE jti = ? AND rotated_at IS NULL AND revoked_at IS NULL",
                (now, old_jti),
            )
            if cur.rowcount != 1:
                return False
            await conn.execute(
                "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (new_jti, family_id, user_id, now, expires_at),
            )
        return True

    async def revoke_family(self, family_id: str, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?"
                " WHERE family_id = ? AND revoked_at IS NULL",
                (now, family_id),
            )

    async def family_revoked(self, family_id: str) -> bool:
        async with self._db.conn.execute(
            "SELECT 1 FROM refresh_tokens WHERE family_id = ? AND revoked_at IS NOT NULL LIMIT 1",
            (family_id,),
        ) as cur:
            return await cur.fetchone() is not None

    async def prune(self, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM refresh_tokens WHERE expires_at < ?", (now,))
