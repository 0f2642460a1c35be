"""HTTPS in tests: the real `serve_app` (plain and TLS listeners, one app) on free loopback
ports, clients that trust only the box's CA, and helpers to look at the served certificate."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509

from appliance.config import Settings
from appliance.transport.asgi import WebApp
from appliance.transport.server import serve_app
from tests.support import bind_loopback, make_settings


@dataclass
class HttpsServer:
    app: WebApp
    settings: Settings
    http_port: int
    https_port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def https_url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.https_port}"

    @property
    def tls_dir(self) -> Path:
        return self.settings.data_dir / "tls"


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client context that trusts `ca_pem` only, with host name checks on."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = True
    return context


@asynccontextmanager
async def running_https(
    data_dir: Path, overrides: dict[str, dict[str, Any]] | None = None
) -> AsyncIterator[HttpsServer]:
    """`serve_app` with both listeners on 127.0.0.1 (free ports); stopped on exit."""
    plain_sock, tls_sock = bind_loopback(), bind_loopback()
    http_port, https_port = plain_sock.getsockname()[1], tls_sock.getsockname()[1]
    sections: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (overrides or {}).items()}
    sections.setdefault("web", {}).update({"port": http_port, "https_port": https_port})
    settings = make_settings(data_dir, sections)
    app = WebApp(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        serve_app(
            app,
            settings,
            host="127.0.0.1",
            port=http_port,
            sockets=(plain_sock, tls_sock),
            stop=stop,
            ready=ready,
        )
    )
    server = HttpsServer(app, settings, http_port, https_port)
    try:
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait([waiting, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()
        assert ready.is_set(), "the listeners did not start within 30 s"
        yield server
    finally:
        stop.set()
        await task


async def handshake(
    port: int, context: ssl.SSLContext, server_name: str | None
) -> x509.Certificate:
    """A TLS handshake with 127.0.0.1:port; the leaf certificate it was shown."""
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_name or ""
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()
        await writer.wait_closed()
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def served_certificate(port: int, server_name: str | None = None) -> x509.Certificate:
    """The leaf certificate the TLS listener on 127.0.0.1:port hands out (no verification)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return await handshake(port, context, server_name)


async def verified_handshake(port: int, ca_pem: bytes, server_name: str) -> x509.Certificate:
    """A TLS handshake with 127.0.0.1:port that must verify against `ca_pem` for
    `server_name` (a host name or an IP address); returns the leaf."""
    return await handshake(port, client_context(ca_pem), server_name)


def https_client(server: HttpsServer, ca_pem: bytes, host: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.https_url(host), verify=client_context(ca_pem), timeout=10
    )
