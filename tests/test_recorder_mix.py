"""The post-call mix: synthetic per-participant track files (VP8 counters, Opus tones) -> one WebM
with the participants side by side and both voices, checked by decoding it again."""

from __future__ import annotations

import fractions
import time
from pathlib import Path

import av
import numpy as np
import pytest

from appliance.recorder.mix import MixError, mix, mix_in_child
from appliance.recorder.sinks import TrackFile
from tests.recorder_peer import counter_picture, read_counter


def make_video(path: Path, marker: int, seconds: float, fps: int = 30) -> TrackFile:
    """VP8 in Matroska like the pass-through sink writes (1/90000 timestamps)."""
    frames = round(seconds * fps)
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libvpx", rate=fps, options={"deadline": "realtime"})
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(frames):
            luma = counter_picture(index + 1, marker)
            frame = av.VideoFrame(320, 240, "yuv420p")
            frame.planes[0].update(luma.tobytes())
            frame.planes[1].update(bytes([128]) * (160 * 120))
            frame.planes[2].update(bytes([128]) * (160 * 120))
            frame.pts = index
            frame.time_base = fractions.Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return TrackFile(path, "video", 0.0, frames)


def make_audio(path: Path, frequency: float, seconds: float) -> TrackFile:
    samples = round(seconds * 48_000)
    t = np.arange(samples) / 48_000
    pcm = (8000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        for start in range(0, samples - 959, 960):
            frame = av.AudioFrame.from_ndarray(
                pcm[start : start + 960].reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = 48_000
            frame.pts = start
            frame.time_base = fractions.Fraction(1, 48_000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return TrackFile(path, "audio", 0.0, samples // 960)


def shifted(track: TrackFile, offset: float) -> TrackFile:
    return TrackFile(track.path, track.kind, offset, track.frames)


def tone_energy(pcm: np.ndarray, frequency: float) -> float:
    """Share of the signal's energy within 20 Hz of `frequency`."""
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    band = (freqs > frequency - 20) & (freqs < frequency + 20)
    return float(spectrum[band].sum() / spectrum.sum())


def participants(tmp_path: Path, seconds: float = 3.0) -> list[list[TrackFile]]:
    alice = [
        shifted(make_video(tmp_path / "a-video.mkv", 1, seconds), 1.0),
        shifted(make_audio(tmp_path / "a-audio.mkv", 440, seconds), 1.0),
    ]
    bob = [
        shifted(make_video(tmp_path / "b-video.mkv", 2, seconds), 1.4),
        shifted(make_audio(tmp_path / "b-audio.mkv", 1000, seconds), 1.4),
    ]
    return [alice, bob]


def check_side_by_side(path: Path, duration: float) -> None:
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "vp8" and audio.codec_context.name == "opus"
        assert (video.width, video.height) == (1280, 480)
        assert container.duration is not None
        assert abs(container.duration / 1e6 - duration) < 0.2
        seen: dict[int, list[int]] = {1: [], 2: []}
        for frame in container.decode(video):
            luma = frame.to_ndarray(format="gray")
            for tile in (0, 1):
                part = luma[:, tile * 640 : (tile + 1) * 640]
                if part.max() < 100:
                    continue  # black: no picture yet
                count, marker = read_counter(part)
                assert marker == tile + 1
                seen[marker].append(count)
        for counts in seen.values():
            assert len(set(counts)) > 60
            assert counts == sorted(counts)
    with av.open(str(path)) as container:
        pcm = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)])
    assert tone_energy(pcm, 440) > 0.2 and tone_energy(pcm, 1000) > 0.2


@pytest.mark.timeout(60)
def test_two_participants_side_by_side(tmp_path: Path) -> None:
    inputs = participants(tmp_path)
    started = time.monotonic()
    result = mix(inputs, tmp_path / "out.webm")
    elapsed = time.monotonic() - started
    # Bob's tracks start 0.4 s after Alice's and last 3 s: 3.4 s in all.
    assert result.content_type == "video/webm"
    assert abs(result.duration - 3.4) < 0.1
    assert result.size == (tmp_path / "out.webm").stat().st_size
    check_side_by_side(tmp_path / "out.webm", 3.4)
    assert elapsed < 3.4 * 2, elapsed  # well under real time normally; generous for CI


@pytest.mark.timeout(60)
async def test_mix_in_a_niced_child(tmp_path: Path) -> None:
    inputs = participants(tmp_path, seconds=2.0)
    result = await mix_in_child(inputs, tmp_path / "out.webm")
    assert result.content_type == "video/webm" and abs(result.duration - 2.4) < 0.1
    check_side_by_side_duration = result.duration
    with av.open(str(tmp_path / "out.webm")) as container:
        assert container.duration is not None
        assert abs(container.duration / 1e6 - check_side_by_side_duration) < 0.2
    assert not (tmp_path / "out.webm.json").exists()


@pytest.mark.timeout(60)
def test_audio_only_call(tmp_path: Path) -> None:
    inputs = [
        [make_audio(tmp_path / "a.mkv", 440, 2.0)],
        [shifted(make_audio(tmp_path / "b.mkv", 1000, 2.0), 0.5)],
    ]
    result = mix(inputs, tmp_path / "out.webm")
    assert result.content_type == "audio/webm"
    assert abs(result.duration - 2.5) < 0.1
    with av.open(str(tmp_path / "out.webm")) as container:
        assert not container.streams.video and len(container.streams.audio) == 1
        pcm = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)])
    assert tone_energy(pcm, 440) > 0.2 and tone_energy(pcm, 1000) > 0.2


@pytest.mark.timeout(60)
def test_one_side_without_video_gets_a_black_tile(tmp_path: Path) -> None:
    inputs = [
        [make_video(tmp_path / "v.mkv", 3, 1.0), make_audio(tmp_path / "a.mkv", 440, 1.0)],
        [make_audio(tmp_path / "b.mkv", 1000, 1.0)],
    ]
    result = mix(inputs, tmp_path / "out.webm")
    assert result.content_type == "video/webm"
    with av.open(str(tmp_path / "out.webm")) as container:
        for frame in container.decode(video=0):
            luma = frame.to_ndarray(format="gray")
            assert luma[:, 640:].max() < 40
            assert read_counter(luma[:, :640])[1] == 3


def test_nothing_recorded(tmp_path: Path) -> None:
    with pytest.raises(MixError) as caught:
        mix([[TrackFile(tmp_path / "none.mkv", "video", 0.0, 0)], []], tmp_path / "out.webm")
    assert caught.value.reason == "recorder_error"


async def test_child_reports_failure(tmp_path: Path) -> None:
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"not a matroska file")
    with pytest.raises(MixError) as caught:
        await mix_in_child([[TrackFile(broken, "video", 0.0, 5)]], tmp_path / "out.webm")
    assert caught.value.reason == "recorder_error"
    assert not (tmp_path / "out.webm.json").exists()
