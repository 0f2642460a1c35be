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


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """One login (one refresh-token family), as its owner sees it."""

    id: int
    family_id: str
    user_id: int
    created_at: float
    last_used_at: float
    client_address: str
    user_agent: str


_LOGIN_COLUMNS = (
    "l.id, l.family_id, l.user_id, l.created_at, l.last_used_at, l.client_address, l.user_agent"
)
# The login still holds a usable refresh token: the latest of its chain, not revoked, not expired.
_LIVE = (
    "EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = l.family_id"
    " AND t.rotated_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > ?)"
)


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

    async def start_login(
        self,
        jti: str,
        family_id: str,
        user_id: int,
        issued_at: float,
        expires_at: float,
        *,
        client_address: str,
        user_agent: str,
    ) -> None:
        """A new login: its first refresh token and its `logins` row, together."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "INSERT INTO refresh_tokens (jti, family_id, user_id, issued_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (jti, family_id, user_id, issued_at, expires_at),
            )
            await conn.execute(
                "INSERT INTO logins (family_id, user_id, created_at, last_used_at,"
                " client_address, user_agent) VALUES (?, ?, ?, ?, ?, ?)",
                (family_id, user_id, issued_at, issued_at, client_address, user_agent),
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
            await conn.execute(
                "UPDATE logins SET last_used_at = ? WHERE family_id = ?", (now, family_id)
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

    async def revoke_user(
        self, user_id: int, now: float, *, except_family: str | None = None
    ) -> list[str]:
        """Revoke every login of the user but `except_family`; return the families revoked."""
        async with self._db.transaction() as conn:
            async with conn.execute(
                "SELECT DISTINCT family_id FROM refresh_tokens"
                " WHERE user_id = ? AND revoked_at IS NULL AND family_id IS NOT ?",
                (user_id, except_family),
            ) as cur:
                families = [str(r[0]) for r in await cur.fetchall()]
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?"
                " WHERE user_id = ? AND revoked_at IS NULL AND family_id IS NOT ?",
                (now, user_id, except_family),
            )
        return families

    async def active_logins(self, user_id: int, now: float) -> list[LoginRecord]:
        """The user's logins that can still be used, newest first."""
        async with self._db.conn.execute(
            f"SELECT {_LOGIN_COLUMNS} FROM logins l WHERE l.user_id = ? AND {_LIVE}"  # noqa: S608
            " ORDER BY l.created_at DESC, l.id DESC",
            (user_id, now),
        ) as cur:
            return [LoginRecord(*r) for r in await cur.fetchall()]

    async def active_login(self, login_id: int, user_id: int, now: float) -> LoginRecord | None:
        async with self._db.conn.execute(
            f"SELECT {_LOGIN_COLUMNS} FROM logins l"  # noqa: S608
            f" WHERE l.id = ? AND l.user_id = ? AND {_LIVE}",
            (login_id, user_id, now),
        ) as cur:
            row = await cur.fetchone()
        return LoginRecord(*row) if row else None

    async def prune(self, now: float) -> None:
        async with self._db.transaction() as conn:
            await conn.execute("DELETE FROM refresh_tokens WHERE expires_at < ?", (now,))
            await conn.execute(
                "DELETE FROM logins WHERE NOT EXISTS"
                " (SELECT 1 FROM refresh_tokens t WHERE t.family_id = logins.family_id)"
            )
