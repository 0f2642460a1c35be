"""Track sinks: real aiortc peers on loopback send the synthetic tracks, the receiving side
records each track (pass-through muxing, or aiortc's MediaRecorder), and the files are reopened
with PyAV."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection

from appliance.recorder import passthrough
from appliance.recorder.passthrough import EncodedFrame, PassthroughDecoder, vp8_keyframe_size
from appliance.recorder.sinks import TrackFile, TrackSink, open_sink, opus_samples
from tests.recorder_peer import CounterTrack, ToneTrack, connect_pair, read_counter
from tests.webrtc_peer import loopback_only


async def record_pair(tmp_path: Path, *, passthrough_on: bool, seconds: float) -> list[TrackFile]:
    sender = RTCPeerConnection()
    receiver = RTCPeerConnection()
    sender.addTrack(ToneTrack(440))
    sender.addTrack(CounterTrack(marker=5))
    sinks: list[TrackSink] = []
    starting: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def _track(track: MediaStreamTrack) -> None:
        rtp = next(r for r in receiver.getReceivers() if r.track is track)
        sink = open_sink(
            track, tmp_path / f"{track.kind}.mkv", passthrough=passthrough_on, receiver=rtp
        )
        sinks.append(sink)
        starting.append(asyncio.create_task(sink.start()))

    try:
        await connect_pair(sender, receiver)
        async with asyncio.timeout(15):
            for sink in sinks:
                await sink.first_frame.wait()
        await asyncio.sleep(seconds)
        files = [await sink.stop() for sink in sinks]
    finally:
        await sender.close()
        await receiver.close()
    return sorted(files, key=lambda f: f.kind)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("passthrough_on", [True, False], ids=["passthrough", "stock"])
async def test_track_files_reopen_with_the_right_codecs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passthrough_on: bool
) -> None:
    loopback_only(monkeypatch)
    audio, video = await record_pair(tmp_path, passthrough_on=passthrough_on, seconds=2.0)
    assert audio.kind == "audio" and video.kind == "video"
    # At least a third of what 2 s hold (aiortc's MediaRecorder falls behind on a busy box).
    assert audio.frames >= 33 and video.frames >= 20
    assert 0 <= audio.start_offset < 10 and 0 <= video.start_offset < 10

    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "vp8"
        assert (stream.width, stream.height) == (320, 240)
        counters = []
        for frame in container.decode(stream):
            count, marker = read_counter(frame.to_ndarray(format="gray"))
            assert marker == 5
            counters.append(count)
        assert len(counters) >= 20
        assert counters == sorted(counters)
        assert container.duration is not None
        assert 1.5 < container.duration / 1e6 < 4
    with av.open(str(audio.path)) as container:
        sound = container.streams.audio[0]
        assert sound.codec_context.name == "opus"
        samples = sum(frame.samples for frame in container.decode(sound))
        assert 0.6 * 48_000 < samples < 4 * 48_000


def test_decoder_passes_frames_through() -> None:
    class Jitter:
        def __init__(self, data: bytes, timestamp: int) -> None:
            self.data, self.timestamp = data, timestamp

    key = bytes([0x10, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + b"rest"
    assert vp8_keyframe_size(key) == (640, 480)
    (frame,) = PassthroughDecoder("VP8").decode(Jitter(key, 3000))
    assert frame == EncodedFrame("vp8", key, 3000, True, 640, 480)
    (inter,) = PassthroughDecoder("VP8").decode(Jitter(b"\x11\x22\x33", 6000))
    assert not inter.keyframe and vp8_keyframe_size(b"\x11\x22\x33") is None
    # A truncated keyframe is not taken for one.
    assert vp8_keyframe_size(key[:8]) is None
    (opus,) = PassthroughDecoder("opus").decode(Jitter(b"\xfc\x00", 960))
    assert opus.keyframe and opus.codec == "opus"
    assert PassthroughDecoder("opus").decode(Jitter(b"", 0)) == []


def test_opus_packet_durations() -> None:
    assert opus_samples(bytes([0xFC])) == 960  # CELT 20 ms, one frame
    assert opus_samples(bytes([0x78 | 1])) == 1920  # hybrid 20 ms, two frames
    assert opus_samples(bytes([0x08])) == 960  # SILK NB 20 ms
    assert opus_samples(bytes([0xF3, 0x03])) == 3 * 480  # CELT 10 ms, code 3, three frames
    assert opus_samples(b"") == 0


def test_host_addresses_are_restricted_and_restored() -> None:
    import aioice.ice

    stock = aioice.ice.get_host_addresses
    try:
        passthrough.restrict_host_addresses(["127.0.0.1", "::1"])
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "::1"]
        passthrough.restrict_host_addresses([])
        assert aioice.ice.get_host_addresses is stock
        with pytest.raises(ValueError):
            passthrough.restrict_host_addresses(["not an address"])
    finally:
        aioice.ice.get_host_addresses = stock


def test_install_is_idempotent() -> None:
    from aiortc import rtcrtpreceiver

    module: Any = rtcrtpreceiver
    passthrough.install()
    patched = module.get_decoder
    passthrough.install()
    assert module.get_decoder is patched
    assert passthrough.installed()
    with pytest.raises(TypeError):
        passthrough.enable(ToneTrack(440))  # not a received track


class FakeReceiver:
    """Counts the PLIs a sink asks for."""

    def __init__(self) -> None:
        self.plis: list[int] = []

    def getSynchronizationSources(self) -> list[Any]:
        class Source:
            source = 1234

        return [Source()]

    async def _send_rtcp_pli(self, ssrc: int) -> None:
        self.plis.append(ssrc)


class ReceivedVideo(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    async def recv(self) -> Any:
        return await self._queue.get()


def vp8_frames(count: int) -> list[bytes]:
    import fractions

    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 30)
    packets: list[bytes] = []
    for index in range(count):
        frame = av.VideoFrame(320, 240, "yuv420p")
        frame.pts = index
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


async def test_keyframes_are_asked_for_until_one_comes(tmp_path: Path) -> None:
    from appliance.recorder import sinks

    receiver = FakeReceiver()
    sink = open_sink(
        ReceivedVideo(),
        tmp_path / "v.mkv",
        passthrough=True,
        receiver=receiver,  # type: ignore[arg-type]
    )
    assert isinstance(sink, sinks.PassthroughSink)
    key, *inter = vp8_frames(5)
    assert vp8_keyframe_size(key) == (320, 240) and vp8_keyframe_size(inter[0]) is None

    def encoded(data: bytes, timestamp: int) -> EncodedFrame:
        size = vp8_keyframe_size(data) or (0, 0)
        return EncodedFrame("vp8", data, timestamp, size != (0, 0), *size)

    # A stream that starts without a keyframe: nothing written, one PLI (then rate-limited).
    sink.write(encoded(inter[0], 0))
    sink.write(encoded(inter[1], 3000))
    await asyncio.sleep(0)
    assert sink.frames_written == 0 and receiver.plis == [1234]
    sink.write(encoded(key, 6000))
    sink.write(encoded(inter[0], 9000))
    assert sink.frames_written == 2 and not receiver.plis[1:]
    # Frames went missing (a 1 s hole): another PLI.
    sink._last_keyframe_request = 0.0
    sink.write(encoded(inter[1], 9000 + 90_000))
    await asyncio.sleep(0)
    assert receiver.plis == [1234, 1234]
    sink.write(encoded(inter[2], 9000))  # late: dropped, timestamps only grow
    track = await sink.stop()
    assert track.frames == 3 and track.kind == "video"
    with av.open(str(track.path)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (320, 240)
        assert len(list(container.demux(video=0))) >= 3
