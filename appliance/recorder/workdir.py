"""Where recordings are written while they are made: `<data_dir>/recorder`, mode 0700, one folder
per recording, removed once the recording is uploaded or has failed. Anything there at start-up
is left from a crash and is discarded."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

#: Recording ids are picked by web; only these make a folder name (no "..", no "/").
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class WorkDir:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "recorder"

    def prepare(self) -> int:
        """Create the folder (0700) and empty it; returns how many entries were discarded."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        discarded = 0
        for entry in self.root.iterdir():
            self._remove(entry)
            discarded += 1
        if discarded:
            log.warning("discarded %d unfinished recording(s) from before a restart", discarded)
        return discarded

    def create(self, recording_id: str) -> Path:
        """A fresh folder for one recording (ValueError for an id that is not a plain name)."""
        folder = self.path(recording_id)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
        return folder

    def path(self, recording_id: str) -> Path:
        if not _SAFE_ID.match(recording_id):
            raise ValueError("recording id is not a plain name")
        return self.root / recording_id

    def remove(self, recording_id: str) -> None:
        self._remove(self.path(recording_id))

    def entries(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir())

    @staticmethod
    def _remove(entry: Path) -> None:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
