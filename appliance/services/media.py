"""Media sharing: pre-signed uploads straight to the store, checked before they are announced.

1. `request_upload`: a member asks to upload a file of a declared type and size into a room; the
   server picks the object key, records a pending upload and signs a PUT that binds the exact
   Content-Type and Content-Length, valid for a few minutes.
2. The client PUTs the bytes to the store.
3. `complete` (`media:uploaded`): the server stats the object; only if it exists with the declared
   size and type is it marked complete and announced as a chat message with an attachment.
4. `download_url`: members get a short pre-signed GET.
Pending uploads never completed are removed, object and row, after they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import unicodedata
from typing import Any

from appliance.adapters.object_store import (
    ObjectStore,
    StoreUnavailable,
    content_disposition,
)
from appliance.config import StorageConfig
from appliance.errors import AppError, ErrorCode
from appliance.observability.metrics import Metrics
from appliance.services.chat import ChatService
from appliance.services.clock import Clock
from appliance.storage.media import MediaRecord, MediaRepository

log = logging.getLogger(__name__)

# Types a browser could run or render as a page: always downloaded, never shown inline.
ACTIVE_TYPES = {
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
    "application/x-javascript",
    "text/css",
    "application/pdf",
}
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def clean_filename(name: str) -> str:
    """A display name: no path, no control characters, at most 255 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    if not name:
        raise AppError(ErrorCode.INVALID_REQUEST, "filename is empty")
    return name[:255]


class MediaService:
    def __init__(
        self,
        config: StorageConfig,
        store: ObjectStore,
        repo: MediaRepository,
        chat: ChatService,
        clock: Clock,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._metrics = metrics
        self._repo = repo
        self._chat = chat
        self._clock = clock
        self._allowed = {t.lower() for t in config.allowed_types}
        self._cleaner: asyncio.Task[None] | None = None
        self._bucket_ready = False
        self._store_warned = False

    async def start(self) -> None:
        await self._ensure_bucket()
        self._cleaner = asyncio.create_task(self._clean_periodically(), name="media-cleanup")

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.gather(self._cleaner, return_exceptions=True)
            self._cleaner = None

    async def _ensure_bucket(self) -> bool:
        if not self._bucket_ready:
            try:
                await self._store.ensure_bucket()
                self._bucket_ready = True
            except Exception as exc:  # the store may start after us; retried later
                # Once per outage: a box run without its store would repeat it every round.
                level = logging.DEBUG if self._store_warned else logging.WARNING
                log.log(level, "object store not ready: %s", exc)
                self._store_warned = True
            else:
                if self._store_warned:
                    log.info("object store is ready")
                self._store_warned = False
        return self._bucket_ready

    def _outcome(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.upload(outcome)

    async def healthy(self) -> bool:
        return await self._store.ping()

    def base_url(self, origin: str) -> str:
        """Where browsers send uploads and downloads: the configured public URL, else the web
        origin itself (the web service proxies the bucket's path to the managed store)."""
        if self._config.public_url:
            return self._config.public_url.rstrip("/")
        if self._config.managed == "none":
            return self._config.endpoint.rstrip("/")
        return origin

    async def _require_store(self) -> None:
        if not await self._ensure_bucket() or not await self._store.ping():
            raise AppError(ErrorCode.STORAGE_UNAVAILABLE, "file storage is unavailable")

    # -- 1. the upload request --------------------------------------------------------------

    async def request_upload(
        self,
        user_id: int,
        room_id: int,
        filename: str,
        content_type: str,
        size: int,
        origin: str,
    ) -> dict[str, Any]:
        await self._chat.require_member(user_id, room_id)
        content_type = content_type.strip().lower()
        if not _TYPE.match(content_type) or content_type not in self._allowed:
            raise AppError(
                ErrorCode.MEDIA_TYPE_NOT_ALLOWED, f"files of type {content_type!r} are not allowed"
            )
        if size > self._config.max_upload_size:
            raise AppError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"files may be at most {self._config.max_upload_size} bytes",
            )
        name = clean_filename(filename)
        await self._require_store()
        now = self._clock()
        media_id = secrets.token_urlsafe(16)
        record = MediaRecord(
            id=media_id,
            room_id=room_id,
            uploader_id=user_id,
            object_key=f"rooms/{room_id}/{media_id}",
            filename=name,
            content_type=content_type,
            size=size,
            status="pending",
            created_at=now,
            expires_at=now + self._config.pending_ttl,
        )
        await self._repo.add_pending(record)
        self._outcome("requested")
        ttl = self._config.upload_url_ttl
        url = self._store.presign_put(
            self.base_url(origin), record.object_key, content_type, size, ttl
        )
        return {
            "media_id": media_id,
            "upload": {
                "url": url,
                "method": "PUT",
                "headers": {"Content-Type": content_type, "Content-Length": str(size)},
            },
            "expires_in": ttl,
        }

    # -- 3. the notification ----------------------------------------------------------------

    async def complete(
        self, user_id: int, media_id: str, caption: str, sid: str | None
    ) -> dict[str, Any]:
        record = await self._repo.get(media_id)
        if record is None:
            raise AppError(ErrorCode.NOT_FOUND, "no such upload")
        if record.uploader_id != user_id:
            raise AppError(ErrorCode.FORBIDDEN, "that upload is someone else's")
        await self._chat.require_member(user_id, record.room_id)
        if record.status == "pending":
            if record.expires_at < self._clock():
                await self._discard(record)
                self._outcome("expired")
                raise AppError(ErrorCode.UPLOAD_EXPIRED, "the upload expired; request a new one")
            try:
                found = await self._store.stat(record.object_key)
            except StoreUnavailable:
                self._outcome("failed")
                raise AppError(
                    ErrorCode.STORAGE_UNAVAILABLE, "file storage is unavailable"
                ) from None
            if found is None:
                self._outcome("missing")
                raise AppError(ErrorCode.UPLOAD_MISSING, "the file has not been uploaded")
            if found.size != record.size or found.content_type.lower() != record.content_type:
                await self._discard(record)
                self._outcome("mismatch")
                raise AppError(
                    ErrorCode.UPLOAD_MISMATCH,
                    "the stored file does not match what was declared; it was deleted",
                )
            await self._repo.mark_complete(media_id)
            self._outcome("completed")
        # The message's client id is derived from the upload: a repeated notify returns it.
        return await self._chat.send(
            user_id, record.room_id, caption, f"media:{media_id}", sid=sid, media_id=media_id
        )

    async def _discard(self, record: MediaRecord) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.remove(record.object_key)
        await self._repo.delete(record.id)

    # -- 4. downloads -----------------------------------------------------------------------

    async def download_url(self, user_id: int, media_id: str, origin: str) -> str:
        record = await self._repo.get(media_id)
        if record is None or record.status != "complete":
            raise AppError(ErrorCode.NOT_FOUND, "no such file")
        try:
            await self._chat.require_member(user_id, record.room_id)
        except AppError:
            raise AppError(ErrorCode.NOT_FOUND, "no such file") from None
        kind = "attachment" if record.content_type in ACTIVE_TYPES else "inline"
        return self._store.presign_get(
            self.base_url(origin),
            record.object_key,
            self._config.download_url_ttl,
            record.content_type,
            content_disposition(kind, record.filename),
        )

    # -- cleanup ----------------------------------------------------------------------------

    async def clean_expired(self) -> int:
        """Remove pending uploads past their expiry, object and row. Returns how many."""
        removed = 0
        for record in await self._repo.expired_pending(self._clock()):
            try:
                await self._store.remove(record.object_key)
            except StoreUnavailable:
                break  # try again next round; the rows stay until the object is gone
            await self._repo.delete(record.id)
            removed += 1
        return removed

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._config.cleanup_interval)
            try:
                await self._ensure_bucket()
                removed = await self.clean_expired()
                if removed:
                    log.info("removed %d abandoned uploads", removed)
            except Exception:
                log.exception("cleaning abandoned uploads failed")
