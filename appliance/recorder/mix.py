"""The post-call mix: every participant's track files -> one WebM (VP8 + Opus) that plays in a
browser. Participants side by side, each in a 640x480 tile (aspect kept, black around and before
the first picture, the last picture held), 30 frames a second; every voice decoded to 48 kHz mono
and summed (clipped). Audio only when nobody sent video.

Streaming: the inputs are decoded frame by frame in step with the output clock, so memory does
not grow with the length of the call. Tracks are placed by their start offsets (the output starts
at the earliest one).

Runs in a child process at nice 10 (`python -m appliance.recorder.mix MANIFEST OUTPUT`, see
`mixjob.mix_in_child`), so a mix never slows the recorder's live work or anything else on the box.
"""

from __future__ import annotations

import contextlib
import fractions
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import av
import numpy as np

# The recorder's side (the job, its result and errors) lives in `mixjob`, which loads no media
# library; re-exported here, where they were first.
from appliance.recorder.mixjob import MixError as MixError
from appliance.recorder.mixjob import MixResult as MixResult
from appliance.recorder.mixjob import mix_failure
from appliance.recorder.mixjob import mix_in_child as mix_in_child
from appliance.recorder.tracks import TrackFile

TILE_W, TILE_H = 640, 480
FPS = 30
RATE = 48_000
BLOCK = 960  # 20 ms of audio per output frame
VIDEO_BITRATE = 1_200_000
AUDIO_BITRATE = 64_000
BLACK_Y, BLACK_C = 16, 128
#: A gap in an input's audio shorter than this is taken as timestamp jitter, not silence.
AUDIO_SLACK = RATE // 100


def _fit(width: int, height: int) -> tuple[int, int]:
    scale = min(TILE_W / width, TILE_H / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _plane(frame: Any, index: int, width: int, height: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width]


class VideoSource:
    """One participant's video, decoded on demand: `at(t)` is the picture showing at time t."""

    def __init__(self, track: TrackFile, offset: float) -> None:
        self._container: Any = av.open(str(track.path))
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = 1
        self._frames = self._decode()
        self._offset = offset
        self._first_pts: int | None = None
        self._next: tuple[float, Any] | None = None
        self.tile: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.changed = False
        self.ended_at: float | None = None  # set once all frames are shown
        self._advance()

    def _decode(self) -> Iterator[Any]:
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError:
            return  # a damaged tail ends this track; what came before is kept

    def _advance(self) -> None:
        for frame in self._frames:
            if frame.pts is None:
                continue
            if self._first_pts is None:
                self._first_pts = frame.pts
            at = self._offset + float((frame.pts - self._first_pts) * self._stream.time_base)
            self._next = (at, frame)
            return
        self._next = None

    def at(self, t: float) -> None:
        """Move to the picture showing at time t (sets `changed` if it is a new one)."""
        self.changed = False
        shown = None
        while self._next is not None and self._next[0] <= t + 1e-6:
            shown = self._next
            self._advance()
        if shown is not None:
            self.tile = self._scale(shown[1])
            self.changed = True
            if self._next is None:
                self.ended_at = shown[0] + 1 / FPS
        elif self._next is None and self.ended_at is None:
            self.ended_at = t

    @staticmethod
    def _scale(frame: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width, height = _fit(frame.width, frame.height)
        scaled = frame.reformat(width=width, height=height, format="yuv420p")
        return (
            _plane(scaled, 0, width, height),
            _plane(scaled, 1, width // 2, height // 2),
            _plane(scaled, 2, width // 2, height // 2),
        )

    def done(self, t: float) -> bool:
        return self._next is None and (self.ended_at is None or t >= self.ended_at)

    def close(self) -> None:
        self._container.close()


class AudioSource:
    """One participant's audio as 48 kHz mono s16, by absolute sample position (silence where
    the track has none)."""

    def __init__(self, track: TrackFile, offset: float) -> None:
        self._container: Any = av.open(str(track.path))
        self._stream = self._container.streams.audio[0]
        self._frames = self._decode()
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._offset = offset
        self._first_pts: int | None = None
        self._chunks: list[np.ndarray] = []
        self._start = round(offset * RATE)  # position of the first buffered sample
        self._end = self._start  # position after the last buffered sample
        self.exhausted = False

    def _decode(self) -> Iterator[Any]:
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError:
            return

    def _pull(self) -> bool:
        for frame in self._frames:
            if frame.pts is not None and self._first_pts is None:
                self._first_pts = frame.pts
            position = self._end
            if frame.pts is not None and self._first_pts is not None:
                at = self._offset + float((frame.pts - self._first_pts) * self._stream.time_base)
                position = round(at * RATE)
            samples = np.concatenate(
                [r.to_ndarray().reshape(-1) for r in self._resampler.resample(frame)]
                or [np.zeros(0, dtype=np.int16)]
            )
            if position > self._end + AUDIO_SLACK:  # a gap: silence
                self._chunks.append(np.zeros(position - self._end, dtype=np.int16))
                self._end = position
            elif position < self._end - AUDIO_SLACK:  # overlap: keep what came first
                samples = samples[self._end - position :]
            self._chunks.append(samples)
            self._end += len(samples)
            return True
        self.exhausted = True
        return False

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples [start, start + count) as int32 (for summing)."""
        while self._end < start + count and not self.exhausted:
            self._pull()
        out = np.zeros(count, dtype=np.int32)
        position = self._start
        keep: list[np.ndarray] = []
        for chunk in self._chunks:
            lo, hi = max(position, start), min(position + len(chunk), start + count)
            if lo < hi:
                out[lo - start : hi - start] = chunk[lo - position : hi - position]
            if position + len(chunk) > start + count:
                keep.append(chunk)
            else:
                self._start = position + len(chunk)
            position += len(chunk)
        self._chunks = keep
        return out

    def done(self, position: int) -> bool:
        return self.exhausted and position >= self._end

    def close(self) -> None:
        self._container.close()


def _open_output(output: Path, video: bool, tiles: int) -> tuple[Any, Any, Any]:
    # libvpx realtime at its fastest setting, one thread: on a busy 2-core box two encoder
    # threads spent 3-10x more CPU waiting for each other than they saved (docs/recording.md).
    container: Any = av.open(str(output), "w", format="webm")
    vstream = None
    if video:
        vstream = container.add_stream(
            "libvpx",
            rate=FPS,
            options={
                "deadline": "realtime",
                "cpu-used": "16",
                "lag-in-frames": "0",
                "threads": "1",
            },
        )
        vstream.width = TILE_W * tiles
        vstream.height = TILE_H
        vstream.pix_fmt = "yuv420p"
        vstream.bit_rate = VIDEO_BITRATE
        vstream.codec_context.gop_size = 5 * FPS
        vstream.codec_context.thread_count = 1
    astream = container.add_stream("libopus", rate=RATE)
    astream.layout = "mono"
    astream.bit_rate = AUDIO_BITRATE
    return container, vstream, astream


def mix(inputs: list[list[TrackFile]], output: Path) -> MixResult:
    """Mix the track files (one list per participant, in tile order) into `output`."""
    used = [t for group in inputs for t in group if t.frames > 0 and t.path.exists()]
    if not used:
        raise MixError("recorder_error", "nothing was recorded")
    origin = min(t.start_offset for t in used)
    tiles = max(2, len(inputs))
    videos: list[VideoSource | None] = []
    audios: list[AudioSource] = []
    try:
        for group in inputs:
            # One tile per participant: their longest video (a reconnect may leave two).
            shown = [t for t in group if t.kind == "video" and t in used]
            video = max(shown, key=lambda t: t.frames) if shown else None
            videos.append(VideoSource(video, video.start_offset - origin) if video else None)
            audios.extend(
                AudioSource(t, t.start_offset - origin)
                for t in group
                if t.kind == "audio" and t in used
            )
        has_video = any(v is not None for v in videos)
        duration = _run(output, videos, audios, tiles, has_video)
    finally:
        for source in [*videos, *audios]:
            if source is not None:
                source.close()
    return MixResult(
        duration=duration,
        size=output.stat().st_size,
        content_type="video/webm" if has_video else "audio/webm",
    )


def _run(
    output: Path,
    videos: list[VideoSource | None],
    audios: list[AudioSource],
    tiles: int,
    has_video: bool,
) -> float:
    container, vstream, astream = _open_output(output, has_video, tiles)
    canvas_y = np.full((TILE_H, TILE_W * tiles), BLACK_Y, dtype=np.uint8)
    canvas_u = np.full((TILE_H // 2, TILE_W * tiles // 2), BLACK_C, dtype=np.uint8)
    canvas_v = canvas_u.copy()
    width = TILE_W * tiles
    frame: Any = None
    n_video = n_audio = 0
    try:
        while True:
            t_video = n_video / FPS if has_video else math.inf
            t_audio = n_audio * BLOCK / RATE
            if t_video <= t_audio:
                live = [v for v in videos if v is not None and not v.done(t_video)]
                if not live and all(a.done(n_audio * BLOCK) for a in audios):
                    break
                changed = False
                for index, source in enumerate(videos):
                    if source is None:
                        continue
                    source.at(t_video)
                    if source.changed and source.tile is not None:
                        _paste(canvas_y, canvas_u, canvas_v, index, source.tile)
                        changed = True
                if frame is None or changed:
                    frame = av.VideoFrame(width, TILE_H, "yuv420p")
                    for plane, data in zip(
                        frame.planes, (canvas_y, canvas_u, canvas_v), strict=True
                    ):
                        _fill(plane, data)
                frame.pts = n_video
                frame.time_base = fractions.Fraction(1, FPS)
                container.mux(vstream.encode(frame))
                n_video += 1
            else:
                start = n_audio * BLOCK
                if not has_video and all(a.done(start) for a in audios):
                    break
                total = np.zeros(BLOCK, dtype=np.int32)
                for voice in audios:
                    total += voice.read(start, BLOCK)
                pcm = np.clip(total, -32768, 32767).astype(np.int16)
                sound = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
                sound.sample_rate = RATE
                sound.pts = start
                sound.time_base = fractions.Fraction(1, RATE)
                container.mux(astream.encode(sound))
                n_audio += 1
        if vstream is not None:
            container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
    finally:
        container.close()
    return max(n_video / FPS if has_video else 0.0, n_audio * BLOCK / RATE)


def _paste(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    index: int,
    tile: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    ty, tu, tv = tile
    height, width = ty.shape
    left = index * TILE_W
    # Black first: the picture may be smaller than the one before (the sender changed size).
    y[:, left : left + TILE_W] = BLACK_Y
    u[:, left // 2 : (left + TILE_W) // 2] = BLACK_C
    v[:, left // 2 : (left + TILE_W) // 2] = BLACK_C
    x0 = (left + (TILE_W - width) // 2) // 2 * 2
    y0 = (TILE_H - height) // 4 * 2
    y[y0 : y0 + height, x0 : x0 + width] = ty
    u[y0 // 2 : y0 // 2 + height // 2, x0 // 2 : x0 // 2 + width // 2] = tu
    v[y0 // 2 : y0 // 2 + height // 2, x0 // 2 : x0 // 2 + width // 2] = tv


def _fill(plane: Any, data: np.ndarray) -> None:
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
    rows[: data.shape[0], : data.shape[1]] = data


# The child process --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """`python -m appliance.recorder.mix MANIFEST OUTPUT`: prints one JSON line."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m appliance.recorder.mix MANIFEST OUTPUT", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)
    try:
        manifest = json.loads(Path(args[0]).read_text("utf-8"))
        inputs = [
            [
                TrackFile(Path(t["path"]), t["kind"], float(t["start_offset"]), int(t["frames"]))
                for t in group
            ]
            for group in manifest["inputs"]
        ]
        result = mix(inputs, Path(args[1]))
    except Exception as exc:
        print(json.dumps({"ok": False, "reason": mix_failure(exc), "message": str(exc)[:200]}))
        return 1
    print(json.dumps({"ok": True, **asdict(result)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
