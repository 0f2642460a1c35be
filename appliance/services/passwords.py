"""Password hashing with argon2id, off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import Parameters, PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

#: argon2id with 19 MiB, 2 passes, 1 lane: the first of OWASP's recommended argon2id settings
#: (Password Storage Cheat Sheet). Chosen by measurement (bench/passwords.py, docs/benchmarks.md,
#: "Password hashing"): argon2-cffi's default (64 MiB, 3 passes, 4 lanes) let a 2-core box do 7
#: logins a second and took 64 MiB a hash; this is several times the logins at a third of the
#: memory, still inside OWASP's advice. Hashes made with other parameters keep working and are
#: re-hashed with these at the next successful login (`AuthService.login`).
PASSWORD_PARAMETERS = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=2,
    memory_cost=19 * 1024,
    parallelism=1,
)


class PasswordService:
    """argon2id off the event loop, in a pool of its own with `max_parallel` threads: a burst of
    logins cannot exhaust a small box's memory, and no more than `max_parallel` threads keep a
    freed hash's memory in their malloc arenas (with the shared default pool, every one of its
    threads ended up holding one: 119 instead of 62 MiB peak, bench/passwords.py)."""

    def __init__(self, hasher: PasswordHasher | None = None, *, max_parallel: int = 2) -> None:
        self._hasher = hasher or PasswordHasher.from_parameters(PASSWORD_PARAMETERS)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="argon2")
        # Verified against when a username does not exist, so both paths cost the same.
        self._dummy_hash = self._hasher.hash("not-a-real-password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    async def verify(self, password_hash: str | None, password: str) -> bool:
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._hasher.verify, target, password
            )
        except (VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
