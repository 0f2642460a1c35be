"""Same-origin access to the managed store: `/<bucket>/<key>?X-Amz-...` is passed, byte for byte
and with the browser's Host header, to the store on its private address.

Why: pre-signed URLs then live on the web UI's own origin, so they work under whatever host name
people use to reach the box, need no CORS and no second port, and share the web service's TLS.
SigV4 signs the Host header and the path, which pass through unchanged, so the store itself still
checks every signature. Only signed GET, HEAD and PUT requests are passed; nothing else reaches
the store. (With `storage.public_url` set, or an external store, browsers go there directly.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from appliance.config import StorageConfig

log = logging.getLogger(__name__)

ASGIApp = Any
Scope = dict[str, Any]

FORWARD_REQUEST = {
    "host",
    "content-type",
    "content-length",
    "content-md5",
    "range",
    "if-none-match",
    "if-modified-since",
    "if-match",
}
FORWARD_RESPONSE = {
    "content-type",
    "content-length",
    "content-range",
    "content-disposition",
    "accept-ranges",
    "etag",
    "last-modified",
}
CHUNK = 256 * 1024


class StoreProxy:
    def __init__(self, app: ASGIApp, config: StorageConfig) -> None:
        self._app = app
        self._config = config
        self._prefix = f"/{config.bucket}/"
        self._enabled = config.managed != "none" and not config.public_url
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self._enabled and scope["type"] == "http" and scope["path"].startswith(self._prefix):
            await self._proxy(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    async def _reply(self, send: Any, status: int, code: str, message: str) -> None:
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _proxy(self, scope: Scope, receive: Any, send: Any) -> None:
        method = scope["method"]
        query: bytes = scope.get("query_string", b"")
        if method not in ("GET", "HEAD", "PUT"):
            await self._reply(send, 405, "invalid_request", "only GET, HEAD and PUT")
            return
        if b"X-Amz-Signature=" not in query:
            await self._reply(send, 403, "forbidden", "only pre-signed requests")
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
            if name.decode("latin-1").lower() in FORWARD_REQUEST
        }
        body: AsyncIterator[bytes] | None = None
        if method == "PUT":
            length = headers.get("content-length", "")
            if not length.isdigit():
                await self._reply(send, 411, "invalid_request", "Content-Length is required")
                return
            if int(length) > self._config.max_upload_size:
                await self._reply(send, 413, "payload_too_large", "file is too large")
                return
            body = self._body(receive)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                read_bufsize=CHUNK,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
            )
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self._config.internal_url + raw_path.decode("latin-1") + "?" + query.decode()
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers={"User-Agent", "Accept", "Accept-Encoding", "Content-Type"},
            ) as upstream:
                await self._relay(upstream, method, send)
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("object store unreachable: %s", exc)
            await self._reply(send, 503, "storage_unavailable", "file storage is unavailable")

    @staticmethod
    async def _body(receive: Any) -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def _relay(self, upstream: aiohttp.ClientResponse, method: str, send: Any) -> None:
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
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
