"""The one error of backup and restore: its message is safe to show and never holds a secret."""

from __future__ import annotations


class BackupError(Exception):
    """A backup could not be written, or an archive is refused (nothing was written)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
