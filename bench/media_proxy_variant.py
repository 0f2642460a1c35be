"""Variants of the web service's store proxy for bench/media_transfer.py (`--variants`).

Bench-only: the product is never changed. Two kinds:

* `proxy-*`: this script serves StoreProxy (appliance/transport/store_proxy.py) alone, in front of
  a plain 404 app instead of Socket.IO + Quart, the way appliance/transport/server.py serves the
  whole app (uvicorn, uvloop, same options). StoreProxy is the outermost ASGI layer, so a
  `/<bucket>/<key>?X-Amz-...` request goes through nothing else. `proxy-1m` and `proxy-4m-any`
  change the proxy's own knobs: aiohttp's read buffer for the store's responses and the relay's
  chunking.
* `web-*`: the real `appliance web` (a second one on the same data dir) with only its
  environment changed: glibc's malloc thresholds, or httptools importable (uvicorn's
  `http="auto"` then parses HTTP/1.1 with httptools instead of the pure-Python h11).

  python bench/media_proxy_variant.py DATA_DIR PORT VARIANT      # the proxy-* kinds
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
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


# glibc: buffers of 128 KiB-4 MiB come from the heap and stay there once freed (up to 64 MiB
# kept), instead of a fresh mmap or heap growth, with its page faults, for nearly every buffer.
MALLOC_ENV = (("MALLOC_MMAP_THRESHOLD_", str(4 * MIB)), ("MALLOC_TRIM_THRESHOLD_", str(64 * MIB)))


@dataclass(frozen=True)
class Variant:
    help: str
    read_bufsize: int | None = None  # aiohttp ClientSession(read_bufsize=); None: its default
    chunk: int = store_proxy.CHUNK  # the relay's iter_chunked size; 0: iter_any()
    env: tuple[tuple[str, str], ...] = ()  # set by bench/media_transfer.py when it starts one
    web: bool = False  # the real `appliance web`, not this script
    httptools: bool = False  # needs httptools importable (media_transfer.py --variant-path)


VARIANTS: dict[str, Variant] = {
    "proxy-as-shipped": Variant("StoreProxy alone, as shipped"),
    "proxy-1m": Variant(
        "StoreProxy alone, read_bufsize=1 MiB and CHUNK=1 MiB", read_bufsize=MIB, chunk=MIB
    ),
    "proxy-4m-any": Variant(
        "StoreProxy alone, read_bufsize=4 MiB and iter_any()", read_bufsize=4 * MIB, chunk=0
    ),
    "web-malloc": Variant(
        "appliance web, MALLOC_MMAP_THRESHOLD_=4MiB MALLOC_TRIM_THRESHOLD_=64MiB",
        env=MALLOC_ENV,
        web=True,
    ),
    "web-httptools": Variant("appliance web, httptools installed", web=True, httptools=True),
    "web-malloc-httptools": Variant(
        "appliance web, both of the above", env=MALLOC_ENV, web=True, httptools=True
    ),
}


async def not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class TunedProxy(StoreProxy):
    """StoreProxy with the upstream session's read buffer and the relay's chunking set."""

    def __init__(self, app: Any, config: StorageConfig, read_bufsize: int | None, chunk: int):
        super().__init__(app, config)
        self._read_bufsize = read_bufsize
        self._chunk = chunk

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await super().__call__(scope, receive, send)
            return
        while True:  # what WebApp's Quart lifespan does for the proxy: close it at the end
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

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
    settings = load(data_dir)
    web = settings.config.web
    variant = VARIANTS[name]
    if variant.web:
        raise SystemExit(f"{name} runs `appliance web`, not this script")
    app = TunedProxy(not_found, settings.config.storage, variant.read_bufsize, variant.chunk)
    uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            loop="uvloop",
            http="auto",
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
