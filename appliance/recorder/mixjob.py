"""The recorder's side of the mix: hand the track files to `python -m appliance.recorder.mix` in a
child process at nice 10 and read its one-line answer. Imports no media library (the child
does), so the long-running recorder does not load PyAV or numpy for it (docs/recording.md,
"Memory")."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from appliance.recorder.tracks import TrackFile


@dataclass(frozen=True, slots=True)
class MixResult:
    duration: float
    size: int
    content_type: str  # "video/webm" | "audio/webm"


class MixError(Exception):
    """The mix failed; `reason` is the failure reason the participants see."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def mix_failure(exc: BaseException) -> str:
    """The failure reason for an exception raised while mixing."""
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return "disk_full"
    if isinstance(exc, MixError):
        return exc.reason
    return "recorder_error"


async def mix_in_child(inputs: list[list[TrackFile]], output: Path) -> MixResult:
    """Run `mix` in a child process at nice 10; raises MixError with the failure reason."""
    manifest = output.with_name(output.name + ".json")
    groups = [[{**asdict(t), "path": str(t.path)} for t in group] for group in inputs]
    try:
        manifest.write_text(json.dumps({"inputs": groups}), "utf-8")
    except OSError as exc:
        raise MixError(mix_failure(exc), str(exc)) from exc
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.recorder.mix",
        str(manifest),
        str(output),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    finally:
        manifest.unlink(missing_ok=True)
    lines = stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if proc.returncode != 0 or not answer.get("ok"):
        reason = str(answer.get("reason") or "recorder_error")
        detail = answer.get("message") or stderr.decode("utf-8", "replace")[-300:]
        raise MixError(reason, f"mix failed ({proc.returncode}): {detail}")
    return MixResult(float(answer["duration"]), int(answer["size"]), str(answer["content_type"]))
