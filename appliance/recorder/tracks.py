"""What a finished track file is: handed from the sinks to the mix. Imports no media library, so
the recorder's service module can name it without loading PyAV (docs/recording.md, "Memory")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TrackFile:
    path: Path
    kind: str  # "audio" | "video"
    start_offset: float  # seconds after the recording's t0 at which the first frame arrived
    frames: int
