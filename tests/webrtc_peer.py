"""A WebRTC test client: an aiortc peer that signals through the appliance exactly as the
design document's call flow says (call:start / call:incoming / call:accepted, webrtc:offer,
webrtc:answer, trickled webrtc:ice-candidate, call:end), sending a synthetic video track and
an audio tone."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from typing import Any

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_CLOCK_RATE, VIDEO_PTIME
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp
from av import AudioFrame, VideoFrame

from tests.support import EventClient


def loopback_only(monkeypatch: Any) -> None:
    """Keep aiortc's ICE on loopback: tests never send to the machine's other addresses."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone, 20 ms frames of 48 kHz mono s16."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None
        rate = 48_000
        samples = int(rate * AUDIO_PTIME)
        period = [int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(samples)]
        self._pcm = b"".join(v.to_bytes(2, "little", signed=True) for v in period)
        self._samples = samples
        self._rate = rate

    async def recv(self) -> AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples
            wait = self._start + self._pts / self._rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        frame.planes[0].update(self._pcm)
        frame.pts = self._pts
        frame.sample_rate = self._rate
        frame.time_base = fractions.Fraction(1, self._rate)
        return frame


class PatternTrack(MediaStreamTrack):
    """A small moving grey-level pattern at 30 frames a second."""

    kind = "video"

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self._width, self._height = width, height
        self._pts = 0
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> VideoFrame:
        step = int(VIDEO_PTIME * VIDEO_CLOCK_RATE)
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += step
            wait = self._start + self._pts / VIDEO_CLOCK_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        self._count += 1
        frame = VideoFrame(width=self._width, height=self._height, format="yuv420p")
        luma = bytes((x + self._count) % 256 for x in range(self._width)) * self._height
        frame.planes[0].update(luma)
        chroma = bytes([128]) * (self._width // 2) * (self._height // 2)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        return frame


def split_candidates(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """Take the a=candidate lines out of an SDP, as trickle-ICE browsers send them apart."""
    lines, candidates, mid, index = [], [], None, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
            mid = None
        if line.startswith("a=mid:"):
            mid = line[len("a=mid:") :]
        if line.startswith("a=candidate:"):
            candidates.append(
                {"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": max(index, 0)}
            )
        elif line != "a=end-of-candidates":
            lines.append(line)
    return "\r\n".join(lines) + "\r\n", candidates


class Peer:
    """One side of a call: a socket to the appliance and an RTCPeerConnection."""

    def __init__(self, client: EventClient, ice: dict[str, Any] | None, *, relay: bool) -> None:
        self.client = client
        servers = []
        for entry in (ice or {}).get("iceServers", []):
            servers.append(
                RTCIceServer(
                    urls=entry["urls"],
                    username=entry.get("username"),
                    credential=entry.get("credential"),
                )
            )
        policy = RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        self.pc.addTrack(ToneTrack())
        self.pc.addTrack(PatternTrack())
        self.sent_candidates: list[dict[str, Any]] = []
        self.frames: dict[str, int] = {"audio": 0, "video": 0}
        self.got_frames = asyncio.Event()
        self.connected = asyncio.Event()
        self._sink = MediaBlackhole()
        self._readers: list[asyncio.Task[None]] = []
        self._remote_set = asyncio.Event()
        self._pending: list[dict[str, Any] | None] = []
        self.ended: dict[str, Any] | None = None

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            self._readers.append(asyncio.create_task(self._read(track)))

        @self.pc.on("connectionstatechange")
        async def _on_state() -> None:
            if self.pc.connectionState == "connected":
                self.connected.set()

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                await track.recv()
                self.frames[track.kind] += 1
                if self.frames["audio"] >= 10 and self.frames["video"] >= 5:
                    self.got_frames.set()
        except Exception:  # noqa: S110 - the track ended with the call
            pass

    async def _send_description(self, kind: str) -> None:
        description = self.pc.localDescription
        sdp, candidates = split_candidates(description.sdp)
        ack = await self.client.call(f"webrtc:{kind}", {"to": 0, kind: {"type": kind, "sdp": sdp}})
        assert ack["ok"], ack
        for candidate in [*candidates, None]:
            ack = await self.client.call("webrtc:ice-candidate", {"candidate": candidate})
            assert ack["ok"], ack
            if candidate is not None:
                self.sent_candidates.append(candidate)

    async def offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send_description("offer")

    async def take_offer(self, offer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await self._flush()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self._send_description("answer")

    async def take_answer(self, answer: dict[str, Any]) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        await self._flush()

    async def take_candidate(self, candidate: dict[str, Any] | None) -> None:
        self._pending.append(candidate)
        if self._remote_set.is_set():
            await self._flush()

    async def _flush(self) -> None:
        self._remote_set.set()
        while self._pending:
            item = self._pending.pop(0)
            if item is None:
                await self.pc.addIceCandidate(None)
                continue
            candidate = candidate_from_sdp(item["candidate"].removeprefix("candidate:"))
            candidate.sdpMid = item.get("sdpMid")
            candidate.sdpMLineIndex = item.get("sdpMLineIndex")
            await self.pc.addIceCandidate(candidate)

    async def pump(self, stop: asyncio.Event) -> None:
        """Apply the signaling events this peer's socket receives, in order."""
        while not stop.is_set():
            getter = asyncio.create_task(self.client.events.get())
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            name, data = getter.result()
            if name == "webrtc:offer":
                await self.take_offer(data["offer"])
            elif name == "webrtc:answer":
                await self.take_answer(data["answer"])
            elif name == "webrtc:ice-candidate":
                await self.take_candidate(data["candidate"])
            elif name == "call:end":
                self.ended = data
                await self.close()
                return

    async def close(self) -> None:
        await self.pc.close()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
