"""SocketNotifier: direct delivery with the in-process manager, `emit` with any other."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import socketio

from appliance.transport.asgi import YOUNG_COLLECTION_THRESHOLD
from appliance.transport.realtime.gateway import SocketNotifier, user_room
from tests.support import RunningServer, running_server


class RecordingManager(socketio.AsyncManager):  # type: ignore[misc]
    """Stands in for a pub/sub manager (AsyncRedisManager and the like)."""

    def __init__(self) -> None:
        super().__init__()
        self.emitted: list[tuple[str, Any, Any]] = []

    async def emit(self, event: str, data: Any, namespace: str, **kwargs: Any) -> None:
        self.emitted.append((event, data, kwargs.get("room") or kwargs.get("to")))


async def test_other_managers_get_every_broadcast_through_emit() -> None:
    manager = RecordingManager()
    sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager)
    notifier = SocketNotifier(sio)
    await notifier.to_room(5, "chat:message", {"x": 1})
    await notifier.to_user(7, "room:joined", {"y": 2})
    await notifier.to_socket("abc", "call:end", {"z": 3})
    assert manager.emitted == [
        ("chat:message", {"x": 1}, "room:5"),
        ("room:joined", {"y": 2}, "user:7"),
        ("call:end", {"z": 3}, "abc"),
    ]


async def test_every_tab_but_the_skipped_one_gets_it(server: RunningServer) -> None:
    alice_id = await server.add_user("alice")
    tabs = [await server.user_socket("alice") for _ in range(3)]
    notifier = server.app.notifier
    sids = notifier.sids_of(alice_id)
    assert len(sids) == 3
    skipped = tabs[0].sio.get_sid("/")
    await notifier.to_user(alice_id, "test:ping", {"n": 1}, except_sid=skipped)
    for tab in tabs[1:]:
        assert await tab.next("test:ping") == {"n": 1}
    await notifier.to_socket(skipped, "test:ping", {"n": 2})
    assert await tabs[0].next("test:ping") == {"n": 2}  # and not the first one


async def test_a_recipient_gone_mid_broadcast_does_not_stop_the_rest(
    server: RunningServer,
) -> None:
    alice_id = await server.add_user("alice")
    first, second = await server.user_socket("alice"), await server.user_socket("alice")
    # The first tab's engine.io socket is closed, but the room still lists it (the window
    # between a transport closing and python-socketio's disconnect handling).
    server.app.sio.eio.sockets[first.sio.eio.sid].closed = True
    await server.app.notifier.to_user(alice_id, "test:ping", {"n": 3})
    assert await second.next("test:ping") == {"n": 3}
    assert user_room(alice_id) in server.app.sio.manager.rooms["/"]


async def test_the_heap_is_frozen_after_start_up_when_asked(tmp_path: Path) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        async with running_server(tmp_path / "d", freeze_heap=True) as server:
            assert gc.get_freeze_count() > 0
            # young collections are rarer, the older generations' thresholds are untouched
            assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *thresholds[1:])
            await server.add_user("alice")
            assert (await (await server.user_socket("alice")).call("presence:list"))["ok"]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    async with running_server(tmp_path / "e"):
        assert gc.get_freeze_count() == 0  # tests and embedders get a normal heap
        assert gc.get_threshold() == thresholds
