"""Serve only the store proxy, as shipped or with one setting changed, for bench/media_transfer.py.

Bench-only: the product is never changed. `appliance/transport/store_proxy.py`'s StoreProxy is
the outermost ASGI layer of the web service, so a `/<bucket>/<key>?X-Amz-...` request goes
through nothing else; here it wraps a plain 404 app instead of Socket.IO + Quart and is served
the way appliance/transport/server.py serves the whole app (uvicorn, uvloop, same options).

  python bench/media_proxy_variant.py DATA_DIR PORT VARIANT

Variants (see VARIANTS): `as-shipped`, and ones that change how the proxy reads from the store
(aiohttp's read buffer, the relay's chunk size) or which HTTP parser uvicorn uses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from appliance.config import StorageConfig, load  # noqa: E402
from appliance.transport import store_proxy  # noqa: E402
from appliance.transport.store_proxy import FORWARD_RESPONSE, StoreProxy  # noqa: E402

MIB = 1024 * 1024

# name -> (aiohttp read_bufsize or None for aiohttp's default, relay chunk or 0 for iter_any,
#          uvicorn http implementation)
VARIANTS: dict[str, tuple[int | None, int, str]] = {
    "as-shipped": (None, store_proxy.CHUNK, "auto"),
    "read_bufsize=1MiB": (MIB, store_proxy.CHUNK, "auto"),
    "read_bufsize=1MiB, CHUNK=1MiB": (MIB, MIB, "auto"),
    "read_bufsize=4MiB, iter_any": (4 * MIB, 0, "auto"),
    "http=httptools": (None, store_proxy.CHUNK, "httptools"),
}


async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class TunedProxy(StoreProxy):
    """StoreProxy with the upstream session's read buffer and the relay's chunking set."""

    def __init__(self, app: Any, config: StorageConfig, read_bufsize: int | None, chunk: int):
        super().__init__(app, config)
        self._read_bufsize = read_bufsize
        self._chunk = chunk

    async def _proxy(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._session is None and self._read_bufsize is not None:
            # The same session as StoreProxy._proxy makes, plus read_bufsize.
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
                read_bufsize=self._read_bufsize,
            )
        await super()._proxy(scope, receive, send)

    async def _relay(self, upstream: aiohttp.ClientResponse, method: str, send: Any) -> None:
        if self._chunk == store_proxy.CHUNK:
            await super()._relay(upstream, method, send)
            return
        # StoreProxy._relay with another chunking of the body.
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in upstream.headers.items()
            if name.lower() in FORWARD_RESPONSE
        ]
        headers += [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"sandbox; default-src 'none'"),
            (b"cache-control", b"private, no-store"),
        ]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        if method != "HEAD":
            chunks = (
                upstream.content.iter_chunked(self._chunk)
                if self._chunk
                else upstream.content.iter_any()
            )
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def main(argv: list[str]) -> int:
    import uvicorn

    data_dir, port, name = Path(argv[0]), int(argv[1]), argv[2]
    read_bufsize, chunk, http = VARIANTS[name]
    settings = load(data_dir)
    proxy = TunedProxy(not_found, settings.config.storage, read_bufsize, chunk)
    web = settings.config.web
    uvicorn.Server(
        uvicorn.Config(
            proxy,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http=http,
            ws="websockets-sansio",
            ws_max_size=web.max_http_buffer_size,
            lifespan="on",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
