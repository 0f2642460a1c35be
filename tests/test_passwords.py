"""Password hashing parameters: argon2id as chosen in docs/benchmarks.md, old hashes still work
and are re-hashed at the next login."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.low_level import Type

from appliance.services.passwords import PASSWORD_PARAMETERS, PasswordService
from tests.support import PASSWORD, RunningServer


async def test_new_hashes_use_the_chosen_parameters() -> None:
    service = PasswordService()
    stored = await service.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD_PARAMETERS.type is Type.ID
    assert await service.verify(stored, PASSWORD)
    assert not await service.verify(stored, PASSWORD + "x")
    assert not await service.verify(None, PASSWORD)
    assert not await service.verify("not a hash", PASSWORD)


async def test_an_old_hash_logs_in_and_is_rehashed(server: RunningServer) -> None:
    container = server.app.container
    user_id = await server.add_user("olga")
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)
    await container.users.update_password(user_id, old)
    assert container.passwords.needs_rehash(old)
    assert (await server.login("olga"))["access_token"]
    record = await container.users.by_username("olga")
    assert record is not None
    assert record.password_hash != old
    assert record.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert (await server.login("olga"))["access_token"]
