"""The object store, reached only through the minio SDK (S3), plus our SigV4 presigner.

The same code serves the managed `rclone serve s3`, a MinIO server, or any external S3 endpoint.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, urlsplit

from appliance.adapters.sigv4 import Credentials, presign
from appliance.config import StorageConfig

if TYPE_CHECKING:
    from minio.error import S3Error


class StoreUnavailable(Exception):
    """The store did not answer, or answered with a server error."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str


class ObjectStore(Protocol):
    async def ensure_bucket(self) -> None: ...
    async def ping(self) -> bool: ...
    async def stat(self, key: str) -> ObjectInfo | None: ...
    async def remove(self, key: str) -> None: ...
    def presign_put(
        self, base_url: str, key: str, content_type: str, size: int, expires: int
    ) -> str: ...
    def presign_get(
        self, base_url: str, key: str, expires: int, content_type: str, disposition: str
    ) -> str: ...


def object_path(bucket: str, key: str) -> str:
    return f"/{bucket}/{key}"


def _s3_error() -> type[S3Error]:
    from minio.error import S3Error  # loaded with the client (`MinioObjectStore`)

    return S3Error


class MinioObjectStore:
    """The minio SDK (about 18 MiB of a process with its crypto) is imported by the first one
    made, not with this module: the recorder makes one only when a recording is uploaded."""

    def __init__(self, config: StorageConfig) -> None:
        import urllib3
        from minio import Minio

        url = urlsplit(config.internal_url)
        self._bucket = config.bucket
        self._credentials = Credentials(
            config.access_key, config.secret_key.get_secret_value(), config.region
        )
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=config.request_timeout, read=config.request_timeout),
            retries=urllib3.Retry(total=0),
            maxsize=8,
        )
        self._client = Minio(
            url.netloc,
            access_key=config.access_key,
            secret_key=config.secret_key.get_secret_value(),
            secure=url.scheme == "https",
            region=config.region,
            http_client=http,
        )

    async def _call(self, fn: object, *args: object) -> object:
        import urllib3

        try:
            return await asyncio.to_thread(fn, *args)  # type: ignore[arg-type]
        except _s3_error():
            raise
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def ensure_bucket(self) -> None:
        if not await self._call(self._client.bucket_exists, self._bucket):
            await self._call(self._client.make_bucket, self._bucket)

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._client.bucket_exists, self._bucket))
        except (StoreUnavailable, _s3_error()):
            return False

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            info = await self._call(self._client.stat_object, self._bucket, key)
        except _s3_error() as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"):
                return None
            raise StoreUnavailable(exc.code) from exc
        size = getattr(info, "size", None) or 0
        content_type = getattr(info, "content_type", None) or ""
        return ObjectInfo(int(size), str(content_type))

    async def upload(self, key: str, path: Path, content_type: str) -> None:
        """Put a local file under `key` (multipart for big files, by the SDK)."""
        try:
            await self._call(self._client.fput_object, self._bucket, key, str(path), content_type)
        except _s3_error() as exc:
            raise StoreUnavailable(exc.code) from exc

    async def remove(self, key: str) -> None:
        try:
            await self._call(self._client.remove_object, self._bucket, key)
        except _s3_error() as exc:
            if exc.code not in ("NoSuchKey", "NoSuchObject"):
                raise StoreUnavailable(exc.code) from exc

    def presign_put(
        self, base_url: str, key: str, content_type: str, size: int, expires: int
    ) -> str:
        return presign(
            self._credentials,
            "PUT",
            base_url,
            object_path(self._bucket, key),
            expires=expires,
            headers={"Content-Type": content_type, "Content-Length": str(size)},
        )

    def presign_get(
        self, base_url: str, key: str, expires: int, content_type: str, disposition: str
    ) -> str:
        return presign(
            self._credentials,
            "GET",
            base_url,
            object_path(self._bucket, key),
            expires=expires,
            query={
                "response-content-type": content_type,
                "response-content-disposition": disposition,
            },
        )


def content_disposition(kind: str, filename: str) -> str:
    """`attachment`/`inline` with an ASCII fallback name and the RFC 5987 UTF-8 name."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
