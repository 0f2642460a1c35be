"""The store's objects through S3 (the minio SDK), streamed: the same code reads and writes the
managed `rclone serve s3` and an external store. For the managed store, `available()` starts it
for the time of a backup or a restore when nothing listens on its address."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from appliance.backup.errors import BackupError
from appliance.config import Settings, StorageConfig
from appliance.services.store_server import prepare

#: Bigger than the web service's: a backup reads big objects and may wait on a busy store.
READ_TIMEOUT = 60.0
START_TIMEOUT = 30.0
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


@dataclass(frozen=True, slots=True)
class Listed:
    key: str
    size: int


class Body(Protocol):
    def read(self, amt: int | None = None) -> bytes: ...


@dataclass(slots=True)
class Opened:
    body: Body
    size: int
    content_type: str


class BackupStore:
    def __init__(self, config: StorageConfig) -> None:
        url = urlsplit(config.internal_url)
        self.bucket = config.bucket
        self.where = config.internal_url
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=config.request_timeout, read=READ_TIMEOUT),
            retries=urllib3.Retry(total=2, backoff_factor=0.5, allowed_methods=None),
            maxsize=4,
        )
        self._client = Minio(
            url.netloc,
            access_key=config.access_key,
            secret_key=config.secret_key.get_secret_value(),
            secure=url.scheme == "https",
            region=config.region,
            http_client=http,
        )

    def _failed(self, what: str, exc: Exception) -> BackupError:
        detail = exc.code if isinstance(exc, S3Error) else type(exc).__name__
        return BackupError(f"the store at {self.where} failed to {what} ({detail})")

    def ready(self) -> bool:
        try:
            self._client.bucket_exists(self.bucket)
        except (S3Error, urllib3.exceptions.HTTPError, OSError, ValueError):
            return False
        return True

    def ensure_bucket(self) -> None:
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)
        except (S3Error, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._failed("create its bucket", exc) from None

    def listing(self) -> list[Listed]:
        """Every object of the bucket (none if there is no bucket yet), sorted by key."""
        try:
            if not self._client.bucket_exists(self.bucket):
                return []
            found = [
                Listed(str(o.object_name), int(o.size or 0))
                for o in self._client.list_objects(self.bucket, recursive=True)
                if not o.is_dir and o.object_name
            ]
        except (S3Error, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._failed("list its objects", exc) from None
        return sorted(found, key=lambda o: o.key)

    @contextlib.contextmanager
    def open(self, key: str) -> Iterator[Opened | None]:
        """The object's body, streamed; None if it was deleted since it was listed."""
        try:
            response = self._client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                yield None
                return
            raise self._failed(f"read {key}", exc) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._failed(f"read {key}", exc) from None
        try:
            size = int(response.headers.get("Content-Length", "-1"))
            if size < 0:
                raise BackupError(f"the store sent {key} without a length")
            ctype = response.headers.get("Content-Type", "") or "application/octet-stream"
            yield Opened(response, size, ctype)
        finally:
            response.close()
            response.release_conn()

    def put(self, key: str, data: BinaryIO, size: int, content_type: str) -> None:
        try:
            self._client.put_object(
                self.bucket,
                key,
                data,
                size,
                content_type=content_type or "application/octet-stream",
                num_parallel_uploads=1,
            )
        except (S3Error, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise self._failed(f"store {key}", exc) from None


def _listening(address: str) -> bool:
    parts = urlsplit(f"//{address}")
    if parts.hostname is None or parts.port is None:
        raise BackupError(f"storage.address {address!r} is not host:port")
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def available(settings: Settings, *, create_bucket: bool) -> Iterator[BackupStore]:
    """The store, ready. A managed store that is not running is started over
    `<data-dir>/objects` on its configured address, and stopped again afterwards."""
    config = settings.config.storage
    store = BackupStore(config)
    if config.managed == "none" or _listening(config.address):
        if create_bucket:
            store.ensure_bucket()
        yield store
        return
    try:
        argv, env = prepare(settings)
    except (FileNotFoundError, ValueError) as exc:
        raise BackupError(f"cannot start the store: {exc}") from None
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            # The port first (no HTTP retries logged meanwhile), then an S3 answer.
            while not (_listening(config.address) and store.ready()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    said = errors.read(2000).decode(errors="replace").strip()
                    raise BackupError(
                        f"the store did not start on {config.address}"
                        + (f": {said.splitlines()[-1]}" if said else "")
                    )
                time.sleep(0.05)
            if create_bucket:
                store.ensure_bucket()
            yield store
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
