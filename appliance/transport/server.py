"""Serve the ASGI app with the chosen server (uvicorn by default; see docs/benchmarks.md).

One process, one event loop, one app, two listeners: plain HTTP on `web.port` and HTTPS on
`web.https_port` (when > 0) with the TlsManager's `ssl.SSLContext`, whose certificate it swaps
in place on renewal. Over plain HTTP only loopback clients get the app; everyone else is sent
to HTTPS (see `PlainHttpGuard`), except the pages needed to get there: /trust and /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any
from urllib.parse import quote

from appliance.config import Settings
from appliance.transport.asgi import WebApp
from appliance.transport.hosts import host_of, https_base

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

#: Reachable over plain HTTP from anywhere: the way to trust the box, and its health.
PLAIN_HTTP_PATHS = frozenset({"/healthz", "/trust", "/trust/ca.crt", "/trust/ca.pem"})


def is_loopback_client(client: Any) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def https_url(scope: Scope, https_port: int) -> str | None:
    """The same request's URL on the HTTPS listener (None if the Host header is unusable)."""
    headers = dict(scope.get("headers") or [])
    raw_host = headers.get(b"host", b"").decode("latin-1")
    host = host_of(raw_host) if raw_host else None
    if host is None and not raw_host and scope.get("server"):
        server_host = str(scope["server"][0])
        host = f"[{server_host}]" if ":" in server_host else server_host
    if host is None:
        return None
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope.get("path", "/"))
    query = scope.get("query_string", b"").decode("latin-1")
    return https_base(host, https_port) + path + (f"?{query}" if query else "")


class PlainHttpGuard:
    """ASGI middleware: plain HTTP (and ws://) serves loopback clients only (development); other
    clients are redirected (308) to HTTPS, except PLAIN_HTTP_PATHS; their websockets are refused.
    A no-op when there is no HTTPS listener (https_port 0)."""

    def __init__(self, app: ASGIApp, https_port: int) -> None:
        self.app = app
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if (
            kind not in ("http", "websocket")
            or not self.https_port
            or scope.get("scheme") in ("https", "wss")
            or is_loopback_client(scope.get("client"))
        ):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008, "reason": "use wss://"})
            return
        if scope.get("path") in PLAIN_HTTP_PATHS:
            await self.app(scope, receive, send)
            return
        location = https_url(scope, self.https_port)
        if location is None:
            await _plain(send, 400, b"Bad Host header.\n", [])
            return
        await _plain(
            send,
            308,
            b"This appliance is served over HTTPS: " + location.encode() + b"\n",
            [(b"location", location.encode()), (b"cache-control", b"no-store")],
        )


async def _plain(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _uvicorn_config(app: ASGIApp, settings: Settings, **changes: Any) -> Any:
    import uvicorn

    web = settings.config.web
    options: dict[str, Any] = {
        "loop": "uvloop",
        "ws": "websockets-sansio",
        "ws_max_size": web.max_http_buffer_size,
        "ws_per_message_deflate": web.websocket_deflate,
        # No websocket-level pings: engine.io's own ping/pong (web.ping_interval/ping_timeout)
        # already finds dead peers, and uvicorn's (every 20 s by default) cost a timer per
        # socket and a frame each way (docs/benchmarks.md, "Memory per socket").
        "ws_ping_interval": None,
        "lifespan": "on",
        "log_level": "warning",
        "log_config": None,  # uvicorn's lines go through the root handler (observability/logs)
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    options.update(changes)
    return uvicorn.Config(app, **options)


def _listener_class() -> type[Any]:
    import uvicorn

    class Listener(uvicorn.Server):
        """A uvicorn server that leaves signals to `serve_app` and says when it listens."""

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.listening = asyncio.Event()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            self.listening.set()

    return Listener


async def serve_app(
    app: WebApp,
    settings: Settings,
    *,
    host: str,
    port: int,
    sockets: tuple[socket.socket, socket.socket | None] | None = None,
    stop: asyncio.Event | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the plain HTTP listener (it owns the app's lifespan) and, when configured, the HTTPS
    one, until `stop` is set (or SIGINT/SIGTERM when `stop` is None) or a listener ends.

    `sockets`: already bound (plain, tls) sockets instead of host and ports (tests); `ready` is
    set once every listener serves."""
    web = settings.config.web
    https = web.https_port > 0
    tls_context: ssl.SSLContext | None = None
    if https:
        tls_context = app.container.tls.context
        app.container.tls.ensure()  # the HTTPS listener must have a certificate from the start
    asgi = PlainHttpGuard(app.asgi, web.https_port)
    listener = _listener_class()
    plain_sock, tls_sock = sockets if sockets else (None, None)
    plain = listener(
        _uvicorn_config(asgi, settings, host=host, port=port, timeout_graceful_shutdown=5)
    )
    secure = None
    if tls_context is not None:
        context = tls_context
        secure = listener(
            _uvicorn_config(
                asgi,
                settings,
                host=host,
                port=web.https_port,
                lifespan="off",
                ssl_context_factory=lambda _config, _default: context,
                timeout_graceful_shutdown=5,
            )
        )
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.create_task(stop.wait())
    plain_task = asyncio.create_task(plain.serve([plain_sock] if plain_sock else None))
    tasks = [plain_task]
    try:
        started = asyncio.create_task(plain.listening.wait())
        await asyncio.wait([started, plain_task, stopping], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if secure is not None and plain.listening.is_set() and not stopping.done():
            tasks.append(asyncio.create_task(secure.serve([tls_sock] if tls_sock else None)))
            started = asyncio.create_task(secure.listening.wait())
            await asyncio.wait([started, *tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
        if ready is not None and all(s.listening.is_set() for s in (plain, secure) if s):
            ready.set()
        await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        # The HTTPS listener goes first; the plain one then runs the app's shutdown.
        if secure is not None and len(tasks) == 2:
            secure.should_exit = True
            await asyncio.gather(tasks[1], return_exceptions=True)
        plain.should_exit = True
        await asyncio.gather(plain_task, return_exceptions=True)
    for task in tasks:
        failure = task.exception() if not task.cancelled() else None
        if failure is not None:
            raise failure


def serve(settings: Settings, host: str, port: int) -> None:
    app = WebApp(settings, freeze_heap=True)
    web = settings.config.web
    if web.server == "hypercorn":
        _serve_hypercorn(app, settings, host, port)
        return

    import uvloop

    uvloop.run(serve_app(app, settings, host=host, port=port))


def _serve_hypercorn(app: WebApp, settings: Settings, host: str, port: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config as HypercornConfig

    web = settings.config.web
    tls = app.container.tls

    class Config(HypercornConfig):
        def create_ssl_context(self) -> ssl.SSLContext | None:
            return tls.context if self.ssl_enabled else None

    config = Config()
    config.websocket_max_message_size = web.max_http_buffer_size
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # through the root handler
    if web.https_port > 0:
        tls.ensure()
        config.certfile = str(tls.cert_path)
        config.keyfile = str(tls.key_path)
        config.bind = [f"{host}:{web.https_port}"]
        config.insecure_bind = [f"{host}:{port}"]
    else:
        config.bind = [f"{host}:{port}"]
    asgi = PlainHttpGuard(app.asgi, web.https_port)
    asyncio.run(hypercorn_serve(asgi, config))  # type: ignore[arg-type]
