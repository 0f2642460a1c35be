"""Helpers for tests: a real server on a free loopback port, real clients."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import socketio
import tomlkit
import uvicorn

from appliance.bootstrap import ensure_config
from appliance.config import Settings, load
from appliance.transport.asgi import WebApp

PASSWORD = "correct horse battery"


def make_settings(data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Settings:
    """A fresh data dir like `appliance init` makes, with some keys changed in the file."""
    settings, _ = ensure_config(data_dir)
    # Set-up is done unless a test asks for the wizard (by giving a `setup` section).
    overrides = {"setup": {"token": ""}, **(overrides or {})}
    if overrides:
        doc = tomlkit.parse(settings.config_path.read_text())
        for section, values in overrides.items():
            table = doc.setdefault(section, tomlkit.table())
            for key, value in values.items():
                table[key] = value
        settings.config_path.write_text(tomlkit.dumps(doc))
        settings = load(data_dir)
    return settings


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL if it does not go within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bind_loopback() -> socket.socket:
    # IPPROTO_TCP given explicitly: asyncio then sets TCP_NODELAY, as it does for uvicorn.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class RunningServer:
    url: str
    app: WebApp
    settings: Settings
    http: httpx.AsyncClient
    clients: list[EventClient] = field(default_factory=list)

    async def add_user(self, name: str, *, admin: bool = False, password: str = PASSWORD) -> int:
        user = await self.app.container.auth.create_user(name, password, is_admin=admin)
        return user.id

    async def login(self, name: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.http.post(
            "/api/auth/login", json={"username": name, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def token(self, name: str) -> str:
        return str((await self.login(name))["access_token"])

    def client(self) -> EventClient:
        """A new, unconnected client, closed with the server."""
        client = EventClient(self.url)
        self.clients.append(client)
        return client

    async def connect(self, token: str | None, **kwargs: Any) -> EventClient:
        client = self.client()
        await client.connect(token, **kwargs)
        return client

    async def user_socket(self, name: str) -> EventClient:
        """Log `name` in and connect a socket, waiting for its first presence list."""
        client = await self.connect(await self.token(name))
        await client.next("presence:list")
        return client


class EventClient:
    """A python-socketio client that queues every event it receives, for awaiting in order."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http_session: aiohttp.ClientSession | None = None
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.connect_error: Any = None
        self.disconnected = asyncio.Event()

        @self.sio.on("*")
        async def _any(event: str, data: Any = None) -> None:
            await self.events.put((event, data))

        @self.sio.on("connect_error")
        async def _refused(data: Any) -> None:
            self.connect_error = data

        @self.sio.on("disconnect")
        async def _gone(reason: Any = None) -> None:
            self.disconnected.set()

    async def connect(self, token: str | None, **kwargs: Any) -> None:
        auth = {"token": token} if token is not None else kwargs.pop("auth", None)
        if self.http_session is None:
            # Owned here so a refused connect does not leak aiohttp's session.
            self.http_session = aiohttp.ClientSession()
            self.sio.eio.http = self.http_session
            self.sio.eio.external_http = True
        await self.sio.connect(
            self.url, auth=auth, transports=kwargs.pop("transports", ["websocket"]), **kwargs
        )

    async def next(self, event: str | None = None, timeout: float = 5.0) -> Any:
        """The next event (of that name, skipping others)."""
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.events.get()
                if event is None or name == event:
                    return data if event is not None else (name, data)

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    def drain(self) -> list[tuple[str, Any]]:
        items = []
        while not self.events.empty():
            items.append(self.events.get_nowait())
        return items

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        if self.http_session is not None:
            await self.http_session.close()


@asynccontextmanager
async def running_server(
    data_dir: Path,
    overrides: dict[str, dict[str, Any]] | None = None,
    *,
    freeze_heap: bool = False,
) -> AsyncIterator[RunningServer]:
    settings = make_settings(data_dir, overrides)
    app = WebApp(settings, freeze_heap=freeze_heap)
    sock = bind_loopback()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app.asgi,
            lifespan="on",
            log_level="warning",
            ws="websockets-sansio",
            ws_per_message_deflate=settings.config.web.websocket_deflate,
            timeout_graceful_shutdown=2,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        running = RunningServer(url, app, settings, http)
        # The socket is already listening; wait for start-up (lifespan) to finish.
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        try:
            yield running
        finally:
            for client in running.clients:
                await client.close()
            server.should_exit = True
            await task
            sock.close()


class BackgroundServer:
    """A running server and one logged-in client on a loop in another thread, for sync tests
    (hypothesis drives its examples synchronously)."""

    def __init__(self, data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[tuple[RunningServer, EventClient]] = self._loop.create_future()
        self._data_dir = data_dir
        self._overrides = overrides
        self._main = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self.server, self.client = asyncio.run_coroutine_threadsafe(
            self._wait_ready(), self._loop
        ).result(timeout=30)

    async def _wait_ready(self) -> tuple[RunningServer, EventClient]:
        return await self._ready

    async def _run(self) -> None:
        try:
            async with running_server(self._data_dir, self._overrides) as server:
                await server.add_user("fuzz")
                client = await server.user_socket("fuzz")
                self._ready.set_result((server, client))
                await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._main.result(timeout=30)
        self.run(_cancel_leftovers())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _cancel_leftovers() -> None:
    """engine.io leaves a sleeping ping task per closed socket; cancel them before closing."""
    current = asyncio.current_task()
    leftovers = [t for t in asyncio.all_tasks() if t is not current]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
