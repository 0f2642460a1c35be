"""The pre-encoded clip the senders loop: 640x480 VP8 at 30 frames a second with a keyframe
every second, and Opus in 20 ms frames (a 440 Hz tone), encoded once with PyAV into a
Matroska file. Senders hand its packets to aiortc as `av.Packet`s, which RTCRtpSender only
packetizes (`encoder.pack`): no encoding in the load generator."""

from __future__ import annotations

import fractions
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

WIDTH, HEIGHT, FPS = 640, 480, 30
SAMPLE_RATE, AUDIO_FRAME = 48_000, 960  # 20 ms
VIDEO_CLOCK, AUDIO_CLOCK = 90_000, 48_000


@dataclass(frozen=True)
class Clip:
    video: list[bytes]
    keyframes: list[bool]
    audio: list[bytes]


def _texture(width: int, height: int, seed: int, noise: bool) -> list[bytes]:
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        base = bytes((x * 3 + y * 2) % 256 for x in range(width))
        if noise:
            grain = rng.randbytes(width)
            base = bytes((a + (b >> 4)) % 256 for a, b in zip(base, grain, strict=True))
        rows.append(base)
    return rows


def _video_frame(i: int, luma: list[bytes], chroma: list[bytes], rng: random.Random | None) -> Any:
    """A texture scrolling diagonally and a bouncing box (its negative); with `rng`, fresh
    grain in the box, like a camera's sensor noise."""
    frame = av.VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
    dx, dy = (i * 4) % WIDTH, (i * 2) % HEIGHT
    rows = []
    for y in range(HEIGHT):
        row = luma[(y + dy) % HEIGHT]
        rows.append(row[dx:] + row[:dx])
    bx = int((WIDTH - 160) * (0.5 + 0.5 * math.sin(i / 20)))
    by = int((HEIGHT - 120) * (0.5 + 0.5 * math.cos(i / 27)))
    for y in range(by, by + 120):
        box = bytes(255 - a for a in rows[y][bx : bx + 160])
        if rng is not None:
            box = bytes(a ^ (b & 0x07) for a, b in zip(box, rng.randbytes(160), strict=True))
        rows[y] = rows[y][:bx] + box + rows[y][bx + 160 :]
    frame.planes[0].update(b"".join(rows))
    cw, ch = WIDTH // 2, HEIGHT // 2
    cdx = (i * 2) % cw
    crows = [chroma[(y + i) % ch][cdx:cw] + chroma[(y + i) % ch][:cdx] for y in range(ch)]
    frame.planes[1].update(b"".join(crows))
    frame.planes[2].update(b"".join(reversed(crows)))
    frame.pts = i
    frame.time_base = fractions.Fraction(1, FPS)
    return frame


def encode_clip(
    path: Path, seconds: float, bitrate: int = 1_000_000, noise: bool = False
) -> dict[str, Any]:
    """Write the clip to `path` (Matroska: VP8 + Opus); return its measured properties.
    `noise`: grain in the picture (costs a VP8 encoder several times more, see the docs)."""
    frames = round(seconds * FPS)
    rng = random.Random(11) if noise else None
    luma = _texture(WIDTH, HEIGHT, 1, noise)
    chroma = [row[: WIDTH // 2] for row in _texture(WIDTH, HEIGHT // 2, 2, noise)]
    with av.open(str(path), mode="w", format="matroska") as out:
        video = out.add_stream("libvpx", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.bit_rate = bitrate
        video.gop_size = FPS
        video.options = {
            "deadline": "good",
            "cpu-used": "4",
            "keyint_min": str(FPS),
            "minrate": str(bitrate),
            "maxrate": str(bitrate),
            "bufsize": str(bitrate),
            "lag-in-frames": "0",
        }
        audio = out.add_stream("libopus", rate=SAMPLE_RATE)
        audio.bit_rate = 64_000
        audio.layout = "stereo"
        tone = b"".join(  # one second of 440 Hz: whole periods, loops without a click
            int(8000 * math.sin(2 * math.pi * 440 * n / SAMPLE_RATE)).to_bytes(
                2, "little", signed=True
            )
            * 2
            for n in range(SAMPLE_RATE)
        )
        for i in range(frames):
            frame = _video_frame(i, luma, chroma, rng)
            frame.pict_type = av.video.frame.PictureType.I if i % FPS == 0 else frame.pict_type
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        audio_frames = round(seconds * SAMPLE_RATE / AUDIO_FRAME)
        for i in range(audio_frames):
            pcm = av.AudioFrame(format="s16", layout="stereo", samples=AUDIO_FRAME)
            offset = (i * AUDIO_FRAME * 4) % len(tone)
            pcm.planes[0].update(tone[offset : offset + AUDIO_FRAME * 4])
            pcm.sample_rate = SAMPLE_RATE
            pcm.pts = i * AUDIO_FRAME
            pcm.time_base = fractions.Fraction(1, SAMPLE_RATE)
            out.mux(audio.encode(pcm))
        out.mux(audio.encode(None))
    clip = load_clip(path)
    size = sum(len(p) for p in clip.video)
    return {
        "seconds": seconds,
        "noise": noise,
        "video_frames": len(clip.video),
        "keyframes": sum(clip.keyframes),
        "video_kbit_s": size * 8 / (len(clip.video) / FPS) / 1000,
        "audio_frames": len(clip.audio),
        "audio_kbit_s": sum(len(p) for p in clip.audio) * 8 / (len(clip.audio) * 0.02) / 1000,
    }


def load_clip(path: Path) -> Clip:
    video: list[bytes] = []
    keyframes: list[bool] = []
    audio: list[bytes] = []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                video.append(bytes(packet))
                keyframes.append(bool(packet.is_keyframe))
            elif packet.stream.type == "audio":
                audio.append(bytes(packet))
    if not video or not keyframes[0] or not audio:
        raise RuntimeError(f"{path}: not a usable clip")
    return Clip(video, keyframes, audio)
