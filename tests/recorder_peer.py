"""Test media for recordings: a video whose frames carry their number and the sender's marker as
big black and white blocks (readable after VP8, scaling and mixing), a tone per participant, and
a second RTCPeerConnection per participant towards the recorder, signalled through web's
recorder:* events."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_PTIME
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

from tests.support import EventClient
from tests.webrtc_peer import split_candidates

COUNTER_BITS = 12
MARKER_BITS = 4
WIDTH, HEIGHT = 320, 240
BLOCK_W = WIDTH // COUNTER_BITS
BAND_H = HEIGHT // 4


class ToneTrack(MediaStreamTrack):
    """A sine tone, 20 ms frames of 48 kHz mono s16, in real time."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.rate = 48_000
        self.samples = 960
        self._pts = 0
        self._start: float | None = None
        self.frequency = frequency

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self.samples
            wait = self._start + self._pts / self.rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        t = (np.arange(self.samples) + self._pts) / self.rate
        pcm = (8000 * np.sin(2 * math.pi * self.frequency * t)).astype("<i2")
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(pcm.tobytes())
        frame.pts = self._pts
        frame.sample_rate = self.rate
        frame.time_base = fractions.Fraction(1, self.rate)
        return frame


def counter_picture(count: int, marker: int) -> np.ndarray:
    """Luma: top band = the frame number in COUNTER_BITS blocks (white = 1, most significant
    first), third band = the marker in MARKER_BITS wide blocks, the rest mid-grey."""
    luma = np.full((HEIGHT, WIDTH), 128, dtype=np.uint8)
    for bit in range(COUNTER_BITS):
        value = 235 if count >> (COUNTER_BITS - 1 - bit) & 1 else 16
        luma[0:BAND_H, bit * BLOCK_W : (bit + 1) * BLOCK_W] = value
    marker_w = WIDTH // MARKER_BITS
    for bit in range(MARKER_BITS):
        value = 235 if marker >> (MARKER_BITS - 1 - bit) & 1 else 16
        luma[2 * BAND_H : 3 * BAND_H, bit * marker_w : (bit + 1) * marker_w] = value
    return luma


def read_counter(luma: np.ndarray) -> tuple[int, int]:
    """(frame number, marker) from a picture made by `counter_picture`, at any scale."""
    height, width = luma.shape
    sy, sx = height / HEIGHT, width / WIDTH

    def bit(x: float, y: float) -> int:
        return int(luma[int(y * sy), int(x * sx)] > 128)

    count = 0
    for b in range(COUNTER_BITS):
        count = count << 1 | bit((b + 0.5) * BLOCK_W, BAND_H / 2)
    marker = 0
    marker_w = WIDTH // MARKER_BITS
    for b in range(MARKER_BITS):
        marker = marker << 1 | bit((b + 0.5) * marker_w, 2.5 * BAND_H)
    return count, marker


class CounterTrack(MediaStreamTrack):
    """30 frames a second of `counter_picture`, numbered from 1."""

    kind = "video"

    def __init__(self, marker: int) -> None:
        super().__init__()
        self.marker = marker
        self.count = 0
        self._pts = 0
        self._start: float | None = None
        self._chroma = bytes([128]) * (WIDTH // 2) * (HEIGHT // 2)

    async def recv(self) -> VideoFrame:
        step = int(VIDEO_PTIME * VIDEO_CLOCK_RATE)
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += step
            wait = self._start + self._pts / VIDEO_CLOCK_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self.count += 1
        frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
        frame.planes[0].update(counter_picture(self.count, self.marker).tobytes())
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


async def connect_pair(
    sender: RTCPeerConnection, receiver: RTCPeerConnection, timeout: float = 20
) -> None:
    """Offer/answer between two in-process peer connections (candidates inside the SDP)."""
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    async with asyncio.timeout(timeout):
        while not (sender.connectionState == receiver.connectionState == "connected"):
            if "failed" in (sender.connectionState, receiver.connectionState):
                raise AssertionError("the peer connection failed")
            await asyncio.sleep(0.05)


class RecorderLeg:
    """A participant's second RTCPeerConnection, to the recorder: sends its tracks, signalled with
    recorder:offer / recorder:answer / recorder:ice-candidate through web."""

    def __init__(self, client: EventClient, call_id: str, tracks: list[MediaStreamTrack]) -> None:
        self.client = client
        self.call_id = call_id
        self.pc = RTCPeerConnection()
        for track in tracks:
            self.pc.addTransceiver(track, direction="sendonly")
        self.connected = asyncio.Event()
        self.connected_at = 0.0  # time.monotonic() when the connection came up

        @self.pc.on("connectionstatechange")
        async def _state() -> None:
            if self.pc.connectionState == "connected" and not self.connected.is_set():
                self.connected_at = time.monotonic()
                self.connected.set()

    async def offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp, candidates = split_candidates(self.pc.localDescription.sdp)
        ack = await self.client.call(
            "recorder:offer", {"call_id": self.call_id, "offer": {"type": "offer", "sdp": sdp}}
        )
        assert ack["ok"], ack
        for candidate in [*candidates, None]:
            ack = await self.client.call(
                "recorder:ice-candidate", {"call_id": self.call_id, "candidate": candidate}
            )
            assert ack["ok"], ack

    async def take(self, name: str, data: dict[str, Any]) -> bool:
        """Apply a recorder:answer / recorder:ice-candidate event; False for other events."""
        if name == "recorder:answer" and data.get("call_id") == self.call_id:
            answer = data["answer"]
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            return True
        if name == "recorder:ice-candidate" and data.get("call_id") == self.call_id:
            item = data.get("candidate")
            if item is None:
                await self.pc.addIceCandidate(None)
            else:
                candidate = candidate_from_sdp(item["candidate"].removeprefix("candidate:"))
                candidate.sdpMid = item.get("sdpMid")
                candidate.sdpMLineIndex = item.get("sdpMLineIndex")
                await self.pc.addIceCandidate(candidate)
            return True
        return False

    async def close(self) -> None:
        await self.pc.close()
