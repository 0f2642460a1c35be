"""Synthetic track files for the mix benchmark: the clip's packets, looped to the length of a
call, written by the recorder's own pass-through sink (`PassthroughSink.write`, the entry point
it keeps for synthetic feeds), as fast as it takes them: the files a call of that length would
have left, without waiting for the call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from aiortc.rtcrtpreceiver import RemoteStreamTrack

from bench.peers.clip import AUDIO_FRAME, FPS, HEIGHT, VIDEO_CLOCK, WIDTH, Clip


async def participant(clip: Clip, directory: Path, name: str, seconds: float, offset: float) -> Any:
    """One participant's video and audio files; returns their `TrackFile`s."""
    from appliance.recorder.passthrough import EncodedFrame
    from appliance.recorder.sinks import open_sink

    files = []
    for kind in ("video", "audio"):
        track = RemoteStreamTrack(kind=kind)
        sink: Any = open_sink(track, directory / f"{name}-{kind}.mkv", passthrough=True)
        if kind == "video":
            for i in range(round(seconds * FPS)):
                n = i % len(clip.video)
                key = clip.keyframes[n]
                sink.write(
                    EncodedFrame(
                        "vp8",
                        clip.video[n],
                        i * (VIDEO_CLOCK // FPS),
                        key,
                        WIDTH if key else 0,
                        HEIGHT if key else 0,
                    )
                )
        else:
            for i in range(round(seconds * 48_000 / AUDIO_FRAME)):
                data = clip.audio[i % len(clip.audio)]
                sink.write(EncodedFrame("opus", data, i * AUDIO_FRAME, True))
        result = await sink.stop()
        files.append(replace(result, start_offset=offset))
    return files
