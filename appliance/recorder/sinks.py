"""One file per received track.

Pass-through (the default): the encoded frames `passthrough` hands over are muxed as they are into
a Matroska file with PyAV (no encoder is ever opened: the output stream is made from a template
stream, so `start_encoding` skips `avcodec_open2`). Timestamps are the unwrapped RTP timestamps
(video 1/90000, audio 1/48000) minus the first one. Video frames before the first keyframe are
skipped and a keyframe is asked for (PLI, at most twice a second) until one comes.

Stock (`recording.passthrough = false`): aiortc's `MediaRecorder` (decode, then VP8/Opus encode
into WebM), one per track.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import io
import logging
import time
from functools import cache
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError

from appliance.recorder import passthrough
from appliance.recorder.passthrough import EncodedFrame
from appliance.recorder.tracks import TrackFile as TrackFile  # re-exported: its old home

log = logging.getLogger(__name__)

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)
KEYFRAME_REQUEST_INTERVAL = 0.5
#: A pause this long between two video frames means frames went missing (90 kHz clock: 0.5 s).
VIDEO_GAP = 45_000
#: At stop, how long aiortc's MediaRecorder may take to encode the frames it is behind on.
STOCK_DRAIN_SECONDS = 10.0
#: "OpusHead", version 1, 2 channels, pre-skip 0, 48 kHz, gain 0, mapping family 0 (RFC 7845):
#: WebRTC's Opus is `opus/48000/2` and RTP carries no pre-skip.
OPUS_HEAD = b"OpusHead" + bytes([1, 2]) + (0).to_bytes(2, "little")
OPUS_HEAD += (48_000).to_bytes(4, "little") + (0).to_bytes(2, "little") + bytes([0])


def opus_samples(packet: bytes) -> int:
    """The 48 kHz samples an Opus packet holds, from its TOC byte (RFC 6716 section 3.1)."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        per_frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:
        per_frame = (480, 960)[config & 1]
    else:
        per_frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 0
    return per_frame * count


@cache
def _templates() -> Any:
    """An in-memory WebM with one VP8 and one Opus stream, made by encoding one tiny frame of
    each once: the template streams output streams are copied from, so no encoder is opened for
    a recording."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=30)
        video.width = video.height = 16
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("libopus", rate=48_000)
        audio.layout = "mono"
        picture = av.VideoFrame(16, 16, "yuv420p")
        picture.pts = 0
        out.mux(video.encode(picture))
        out.mux(video.encode(None))
        sound = av.AudioFrame(format="s16", layout="mono", samples=960)
        sound.sample_rate = 48_000
        sound.pts = 0
        for plane in sound.planes:
            plane.update(bytes(plane.buffer_size))
        out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    buffer.seek(0)
    return av.open(buffer, "r")


class TrackSink:
    """Records one received track into one file. `start()` then `stop()`, once each."""

    def __init__(self, track: MediaStreamTrack, path: Path, t0: float | None) -> None:
        self.track = track
        self.path = path
        self.kind = str(track.kind)
        self.t0 = time.monotonic() if t0 is None else t0
        self.first_frame = asyncio.Event()  # set when the first frame is in the file
        self.error: BaseException | None = None
        self._frames = 0
        self._start_offset = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def start_offset(self) -> float:
        return self._start_offset

    def _note_arrival(self, media_time: float) -> None:
        """A frame `media_time` seconds (by its timestamp) after the track's first one arrived
        now. The start offset is the earliest arrival minus media time seen: a stall of the
        event loop only ever delays arrivals, so it does not shift the track."""
        origin = time.monotonic() - self.t0 - media_time
        if not self.first_frame.is_set():
            self._start_offset = origin
            self.first_frame.set()
        elif origin < self._start_offset:
            self._start_offset = max(0.0, origin)

    def _mark_frame(self, media_time: float) -> None:
        self._note_arrival(media_time)
        self._frames += 1

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sink-{self.kind}")

    async def _run(self) -> None:
        raise NotImplementedError

    async def _halt(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def halt(self) -> None:
        """Take no more frames (the file stays open). `stop()` halts too; halting every track of
        a recording first makes them all end at the same moment."""
        await self._halt()

    async def stop(self) -> TrackFile:
        """Flush and close the file. Raises what went wrong while writing (e.g. ENOSPC)."""
        raise NotImplementedError

    def _result(self) -> TrackFile:
        if self.error is not None:
            raise self.error
        return TrackFile(self.path, self.kind, self._start_offset, self._frames)


class PassthroughSink(TrackSink):
    def __init__(
        self,
        track: MediaStreamTrack,
        path: Path,
        t0: float | None,
        receiver: RTCRtpReceiver | None,
    ) -> None:
        super().__init__(track, path, t0)
        passthrough.enable(track)
        self._receiver = receiver
        self._container: Any = None
        self._stream: Any = None
        self._first_timestamp = 0
        self._last_pts = -1
        self._last_keyframe_request = 0.0

    def _ask_keyframe(self) -> None:
        now = time.monotonic()
        if self._receiver is not None and now - self._last_keyframe_request >= (
            KEYFRAME_REQUEST_INTERVAL
        ):
            self._last_keyframe_request = now
            passthrough.request_keyframe(self._receiver)

    def _open(self, frame: EncodedFrame) -> None:
        container = av.open(str(self.path), "w", format="matroska")
        try:
            templates = _templates()
            if self.kind == "video":
                stream = container.add_stream_from_template(templates.streams.video[0])
                stream.width = frame.width
                stream.height = frame.height
                stream.time_base = VIDEO_TIME_BASE
            else:
                stream = container.add_stream_from_template(templates.streams.audio[0])
                stream.codec_context.extradata = OPUS_HEAD
                stream.codec_context.layout = "stereo"
                stream.time_base = AUDIO_TIME_BASE
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream
        self._first_timestamp = frame.timestamp

    def write(self, frame: EncodedFrame) -> None:
        """Mux one encoded frame (public for tests and the benchmark's synthetic feeds)."""
        if self._stream is None:
            if self.kind == "video" and not frame.keyframe:
                self._ask_keyframe()
                return
            self._open(frame)
        pts = frame.timestamp - self._first_timestamp
        if pts <= self._last_pts:
            return  # a late or repeated frame: dts must grow
        if self.kind == "video" and not frame.keyframe and pts - self._last_pts > VIDEO_GAP:
            self._ask_keyframe()  # frames went missing: what follows may refer to them
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        if self.kind == "audio":
            packet.time_base = AUDIO_TIME_BASE
            packet.duration = opus_samples(frame.data)
        else:
            packet.time_base = VIDEO_TIME_BASE
            packet.is_keyframe = frame.keyframe
        media_time = float(pts * packet.time_base)  # before muxing rebases the packet
        self._container.mux_one(packet)
        self._last_pts = pts
        self._mark_frame(media_time)

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:
                    return
                if isinstance(frame, EncodedFrame):
                    self.write(frame)
                elif self._frames == 0:
                    raise TypeError("the track delivers decoded frames: passthrough not enabled")
        except Exception as exc:
            self.error = exc
            log.warning("%s track not recorded further: %s", self.kind, exc)

    async def stop(self) -> TrackFile:
        if not self._stopped:
            self._stopped = True
            await self._halt()
            if self._container is not None:
                try:
                    self._container.close()
                except Exception as exc:
                    self.error = self.error or exc
        return self._result()


class _BufferedTrack(MediaStreamTrack):
    """Between the received track and MediaRecorder: takes every frame as it arrives (so the
    start offset is the arrival, however far the encoder lags) and lets MediaRecorder catch up
    before it is stopped."""

    def __init__(self, source: MediaStreamTrack, sink: TrackSink) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._sink = sink
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump(), name=f"stock-{self.kind}")
        self._first: float | None = None

    async def _pump(self) -> None:
        try:
            while True:
                frame: Any = await self._source.recv()
                at = 0.0
                if frame.pts is not None and frame.time_base is not None:
                    at = float(frame.pts * frame.time_base)
                if self._first is None:
                    self._first = at
                self._sink._note_arrival(at - self._first)
                self.queue.put_nowait(frame)
        except MediaStreamError:
            pass
        finally:
            self.queue.put_nowait(None)

    async def recv(self) -> Any:
        frame = await self.queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        self._sink._frames += 1
        return frame

    async def halt(self) -> None:
        self.pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.pump

    async def drain(self, within: float) -> None:
        """Stop taking frames; wait (at most `within` s) for MediaRecorder to take the rest."""
        await self.halt()
        deadline = time.monotonic() + within
        while self.queue.qsize() > 1 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)  # MediaRecorder's own task takes them: nothing to await


class StockSink(TrackSink):
    """aiortc's own MediaRecorder (decodes and re-encodes every frame)."""

    def __init__(self, track: MediaStreamTrack, path: Path, t0: float | None) -> None:
        super().__init__(track, path, t0)
        self._recorder: MediaRecorder | None = None
        self._buffered: _BufferedTrack | None = None

    async def halt(self) -> None:
        if self._buffered is not None:
            await self._buffered.halt()

    async def start(self) -> None:
        if self._recorder is None:
            self._recorder = MediaRecorder(str(self.path), format="webm")
            self._buffered = _BufferedTrack(self.track, self)
            self._recorder.addTrack(self._buffered)
            await self._recorder.start()

    async def stop(self) -> TrackFile:
        if not self._stopped and self._recorder is not None:
            self._stopped = True
            if self._buffered is not None:
                await self._buffered.drain(STOCK_DRAIN_SECONDS)
            try:
                await self._recorder.stop()
            except Exception as exc:
                if self._frames:  # with no frame the encoders were never opened: nothing lost
                    self.error = exc
        return self._result()


def open_sink(
    track: MediaStreamTrack,
    path: Path,
    *,
    passthrough: bool,
    t0: float | None = None,
    receiver: RTCRtpReceiver | None = None,
) -> TrackSink:
    """A sink for a track just received (call in the "track" handler, before its first frame).

    `t0`: the recording's start on `time.monotonic()` (default: now); `receiver`: the track's
    receiver, for keyframe requests (pass-through only)."""
    if passthrough:
        return PassthroughSink(track, path, t0, receiver)
    return StockSink(track, path, t0)
