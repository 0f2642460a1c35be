"""Small stream helpers: hashing while bytes pass, counting for the progress bar."""

from __future__ import annotations

import hashlib
from typing import Protocol

from appliance.backup.progress import Progress


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class HashingReader:
    """Reads `source`, hashing (SHA-256) and counting what passes, and moves the progress bar."""

    def __init__(self, source: Readable, progress: Progress) -> None:
        self._source = source
        self._progress = progress
        self.hasher = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.hasher.update(data)
            self.count += len(data)
            self._progress.update(len(data))
        return data

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()
