"""What a scrape of `/metrics` does: read the mirrored state into the gauges, then render."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from appliance.adapters import stun_probe

if TYPE_CHECKING:
    from appliance.container import Container


async def _database_up(services: Container) -> bool:
    try:
        async with services.db.conn.execute("SELECT 1") as cur:
            await cur.fetchone()
    except Exception:  # any failure means the database is down
        return False
    return True


async def scrape(services: Container) -> bytes:
    """The same checks as /healthz (a STUN binding to coturn, a ping of the store, `SELECT 1`),
    run concurrently, plus the live counts of sockets, users, calls and recordings."""
    metrics = services.metrics
    turn = services.settings.config.turn
    host = next(iter(turn.listen_ips), "127.0.0.1")
    database_up, turn_up, store_up = await asyncio.gather(
        _database_up(services), stun_probe.alive(host, turn.port), services.media.healthy()
    )
    up = metrics.service_up
    up.labels("database").set(database_up)
    up.labels("turn").set(turn_up)
    up.labels("store").set(store_up)
    up.labels("recorder").set(services.recordings.recorder_up)
    users, sockets = await services.presence.counts()
    metrics.users_online.set(users)
    metrics.sockets.set(sockets)
    for state, count in (await services.calls.counts()).items():
        metrics.calls_active.labels(state).set(count)
    metrics.recordings_active.set(services.recordings.in_progress)
    return metrics.render()
