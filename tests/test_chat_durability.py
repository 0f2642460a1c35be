"""Nothing acknowledged is lost: SIGKILL the server mid-stream, restart, resend the unacked.
And nothing a recipient saw is lost: a message is delivered only once its batch is committed,
so whatever reached the other member before the kill is in the database after it."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import PASSWORD, EventClient
from tests.test_cli import appliance, free_port

TOTAL = 5000
WINDOW = 64
KILL_AFTER = 1500


class ServerProcess:
    def __init__(self, data: Path, port: int) -> None:
        self.data = data
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "APPLIANCE_RATE_LIMITS__CHAT_RATE": "1000000",
            "APPLIANCE_RATE_LIMITS__CHAT_BURST": "1000000",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "appliance",
                "--data-dir",
                str(self.data),
                "--log-level",
                "warning",
                "web",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "server exited during start-up"
            try:
                if httpx.get(self.url + "/healthz", timeout=10).is_success:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        """SIGKILL the server, and see its helper processes (the message writer) go too: the
        writer's stdin closes with its parent, and it exits rather than write on unsupervised."""
        assert self.proc is not None
        pid = self.proc.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children, "the server has no writer process"
        pidfds = [os.pidfd_open(int(child)) for child in children]
        try:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            for fd in pidfds:  # a pidfd turns readable when its process exits
                exited, _, _ = select.select([fd], [], [], 10)
                assert exited, "a helper process outlived the killed server"
        finally:
            for fd in pidfds:
                os.close(fd)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def send_until_done_or_dropped(
    client: EventClient,
    room: int,
    cids: list[str],
    acked: dict[str, int],
    on_progress: asyncio.Event | None,
) -> None:
    """Send with up to WINDOW unacknowledged; stop when the connection drops."""
    slots = asyncio.Semaphore(WINDOW)
    tasks: set[asyncio.Task[None]] = set()

    async def one(cid: str) -> None:
        try:
            ack = await client.sio.call(
                "chat:message",
                {"room_id": room, "text": f"msg {cid}", "client_msg_id": cid},
                timeout=30,
            )
            if ack.get("ok"):
                acked[cid] = ack["message"]["id"]
                if on_progress is not None and len(acked) >= KILL_AFTER:
                    on_progress.set()
        except Exception:  # noqa: S110 - a dropped call is resent later
            pass
        finally:
            slots.release()

    dropped = asyncio.create_task(client.disconnected.wait())
    try:
        for cid in cids:
            acquire = asyncio.create_task(slots.acquire())
            done, _ = await asyncio.wait({acquire, dropped}, return_when=asyncio.FIRST_COMPLETED)
            if dropped in done:
                acquire.cancel()
                break
            task = asyncio.create_task(one(cid))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # Wait for the outstanding ones, or for the drop.
        while tasks and not dropped.done():
            await asyncio.wait({*tasks, dropped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        dropped.cancel()


@pytest.mark.timeout(300)
async def test_kill_minus_nine_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("alice", "bob"):
        assert (
            appliance("--data-dir", str(data), "user", "add", name, stdin=PASSWORD).returncode == 0
        )
    server = ServerProcess(data, free_port())
    acked: dict[str, int] = {}
    cids = [f"k{i:05d}" for i in range(TOTAL)]
    try:
        server.start()
        async with httpx.AsyncClient(base_url=server.url) as http:
            login = await http.post(
                "/api/auth/login", json={"username": "alice", "password": PASSWORD}
            )
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            room = (await http.post("/api/rooms/direct", json={"user_id": 2}, headers=auth)).json()[
                "room"
            ]["id"]
            bob_login = await http.post(
                "/api/auth/login", json={"username": "bob", "password": PASSWORD}
            )

        recipient = EventClient(server.url)  # bob, receiving alice's messages until the kill
        await recipient.connect(bob_login.json()["access_token"])
        client = EventClient(server.url)
        await client.connect(token)
        progress = asyncio.Event()

        async def killer() -> None:
            await progress.wait()
            await asyncio.to_thread(server.kill)

        kill_task = asyncio.create_task(killer())
        await send_until_done_or_dropped(client, room, cids, acked, progress)
        await kill_task
        await client.close()
        await recipient.close()
        seen = {
            data["client_msg_id"]: data["id"]
            for name, data in recipient.drain()
            if name == "chat:message"
        }
        acked_before_kill = dict(acked)
        assert KILL_AFTER <= len(acked_before_kill) < TOTAL, len(acked_before_kill)

        server.start()
        client = EventClient(server.url)
        await client.connect(token)
        remaining = [c for c in cids if c not in acked]
        await send_until_done_or_dropped(client, room, remaining, acked, None)
        await client.close()
        assert len(acked) == TOTAL
    finally:
        server.stop()

    with sqlite3.connect(data / "appliance.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(db.execute("SELECT client_msg_id, id FROM messages WHERE sender_id = 1"))
    assert len(rows) == TOTAL  # every message exactly once (the unique key forbids more)
    for cid, message_id in acked_before_kill.items():
        assert rows[cid] == message_id  # acked before the kill: still there, same id
    for cid, message_id in acked.items():
        assert rows[cid] == message_id
    assert len(seen) >= KILL_AFTER // 2, len(seen)  # bob really was receiving
    for cid, message_id in seen.items():
        assert rows[cid] == message_id  # seen by bob before the kill: stored, same id
