"""Protocol compatibility with the official JavaScript client (socket.io-client 4.x under node).

The node side is `tests/js/sio_client.mjs`: it runs a JSON scenario and prints one JSON line per
thing it observes. Its dependencies are pinned in `tests/js/package-lock.json`; install them with
`npm ci --prefix tests/js`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import RunningServer, running_server

pytestmark = pytest.mark.node

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "sio_client.mjs"
NODE_TIMEOUT = 20.0

Record = dict[str, Any]


@pytest.fixture(scope="session")
def node() -> str:
    """The node binary, with the client library installed; never a skip."""
    path = shutil.which("node")
    if path is None:
        pytest.fail("node is not on PATH; install Node.js 18+ to run the JavaScript client tests")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        pytest.fail(
            "tests/js/node_modules is missing: run `npm ci --prefix tests/js` "
            "to install the pinned socket.io-client"
        )
    return path


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", {"web": {"presence_grace": 0}}) as running:
        yield running


class JsClient:
    """One run of the node script; its observations arrive as parsed JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.records: list[Record] = []

    async def next(self, kind: str, event: str | None = None, timeout: float = 10.0) -> Record:
        """Read records until one of that type (and event name) arrives."""
        async with asyncio.timeout(timeout):
            while True:
                record = await self._read()
                if record["type"] == kind and (event is None or record.get("event") == event):
                    return record

    async def finish(self, timeout: float = NODE_TIMEOUT) -> list[Record]:
        """Wait for the script to exit; every record it printed, in order."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self._read()
                except EOFError:
                    break
            stderr = await self._stderr()
            code = await self.process.wait()
        assert code == 0, f"node exited with {code}: {self.records}\nstderr: {stderr}"
        return self.records

    async def _read(self) -> Record:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError(f"node exited early; stderr: {await self._stderr()}")
        record: Record = json.loads(line)
        self.records.append(record)
        return record

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode(errors="replace")


@asynccontextmanager
async def js_client(node: str, scenario: dict[str, Any]) -> AsyncIterator[JsClient]:
    """Start node with the scenario on stdin (so tokens stay out of the process list)."""
    scenario = {"timeout_ms": int(NODE_TIMEOUT * 1000) - 5000, **scenario}
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(scenario).encode())
    await process.stdin.drain()
    process.stdin.close()
    await process.stdin.wait_closed()
    try:
        yield JsClient(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_js(node: str, scenario: dict[str, Any]) -> list[Record]:
    async with js_client(node, scenario) as client:
        return await client.finish()


def of_type(records: list[Record], kind: str) -> list[Record]:
    return [r for r in records if r["type"] == kind]


async def test_connects_gets_presence_list_then_user_online(
    node: str, server: RunningServer
) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    scenario = {
        "url": server.url,
        "auth": {"token": await server.token("alice")},
        "until": ["presence:list", "user_online"],
    }
    async with js_client(node, scenario) as alice:
        await alice.next("connect")
        listing = await alice.next("event", "presence:list")
        assert listing["data"] == {"users": [{"user_id": alice_id, "username": "alice"}]}
        bob = await server.user_socket("bob")
        online = await alice.next("event", "user_online")
        assert online["data"] == {"user_id": bob_id, "username": "bob"}
        records = await alice.finish()
    # The JS socket saw nothing it should not have, and left as a client leaves.
    assert [r["event"] for r in of_type(records, "event")] == ["presence:list", "user_online"]
    assert of_type(records, "disconnect")[0]["reason"] == "io client disconnect"
    assert of_type(records, "connect_error") == []
    # And the python side saw the JS user go.
    offline = await bob.next("user_offline")
    assert offline["user_id"] == alice_id
    assert offline["username"] == "alice"


async def test_presence_list_with_ack(node: str, server: RunningServer) -> None:
    alice_id = await server.add_user("alice")
    bob_id = await server.add_user("bob")
    await server.user_socket("bob")
    records = await run_js(
        node,
        {
            "url": server.url,
            "auth": {"token": await server.token("alice")},
            "emits": [{"event": "presence:list", "data": {}}],
        },
    )
    (ack,) = of_type(records, "ack")
    assert ack["event"] == "presence:list"
    result = ack["result"]
    assert result["ok"] is True
    assert sorted(result["users"], key=lambda u: u["user_id"]) == [
        {"user_id": alice_id, "username": "alice"},
        {"user_id": bob_id, "username": "bob"},
    ]
    assert of_type(records, "ack_error") == []


async def test_garbage_token_is_refused_with_typed_error(node: str, server: RunningServer) -> None:
    records = await run_js(
        node, {"url": server.url, "auth": {"token": "not.a.jwt"}, "until": ["never"]}
    )
    (refused,) = of_type(records, "connect_error")
    assert refused["message"] == "token_invalid"
    data = refused["data"]
    assert data["code"] == "token_invalid"
    assert isinstance(data["message"], str) and data["message"]
    assert "not.a.jwt" not in json.dumps(data)
    assert of_type(records, "connect") == []
    assert of_type(records, "event") == []


async def test_no_auth_is_refused_as_token_missing(node: str, server: RunningServer) -> None:
    records = await run_js(node, {"url": server.url, "until": ["never"]})
    (refused,) = of_type(records, "connect_error")
    assert refused["message"] == "token_missing"
    assert refused["data"]["code"] == "token_missing"
    assert isinstance(refused["data"]["message"], str)
    assert of_type(records, "connect") == []


async def test_unknown_event_gets_invalid_request_ack(node: str, server: RunningServer) -> None:
    await server.add_user("alice")
    records = await run_js(
        node,
        {
            "url": server.url,
            "auth": {"token": await server.token("alice")},
            "emits": [
                {"event": "no:such-event", "data": {"x": 1}},
                {"event": "presence:list", "data": {}},
            ],
        },
    )
    unknown, known = of_type(records, "ack")
    assert unknown["event"] == "no:such-event"
    assert unknown["result"]["ok"] is False
    assert unknown["result"]["error"]["code"] == "invalid_request"
    assert isinstance(unknown["result"]["error"]["message"], str)
    # The socket is still usable after the bad event.
    assert known["result"]["ok"] is True
