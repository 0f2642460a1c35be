"""A load generator process of bench/recorder.py: several sendonly RTCPeerConnections, each
sending the pre-encoded clip (one VP8 video track and one Opus audio track) in a loop, paced in
real time, with timestamps that go on across loops. Run by the parent as
`python -m bench.peers.sender CLIP`; requests on stdin (see bench/peers/control.py):

  {"op": "offer", "ids": [..]}          -> {"offers": {id: sdp}}
  {"op": "answer", "id": k, "sdp": ..}  -> {}
  {"op": "connected", "timeout": s}     -> {"connected": n} once every PC is "connected"
  {"op": "go", "offsets": {id: s}}      -> {} tracks start sending (stream id at now + offset)
  {"op": "mark"}                        -> {"sent": {id: {"video": n, "audio": n}}, "cpu_s": ..}
  {"op": "pause"}                       -> same as mark, after every track stopped sending
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import sys
import time
from pathlib import Path
from typing import Any

import av
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bench.peers.clip import AUDIO_CLOCK, AUDIO_FRAME, FPS, VIDEO_CLOCK, Clip, load_clip
from bench.peers.control import Message, cpu_seconds, loopback_only, reply_and_exit, serve


class ClipTrack(MediaStreamTrack):
    """Pre-encoded packets of one kind, looped, paced against the monotonic clock."""

    def __init__(self, kind: str, packets: list[bytes], go: asyncio.Event) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._go = go
        self._hold = asyncio.Event()  # never set: a paused track sends nothing more
        self._paused = False
        if kind == "video":
            self._rate, self._clock = FPS, VIDEO_CLOCK
        else:
            self._rate, self._clock = AUDIO_CLOCK // AUDIO_FRAME, AUDIO_CLOCK
        self._time_base = fractions.Fraction(1, self._clock)
        self._step = self._clock // self._rate
        self.start: float | None = None
        self.offset = 0.0
        self.sent = 0

    def pause(self) -> None:
        self._paused = True

    async def recv(self) -> av.Packet[Any]:
        if self.start is None:
            await self._go.wait()
            self.start = time.monotonic() + self.offset
        due = self.start + self.sent / self._rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._paused:
            await self._hold.wait()
        packet = av.Packet(self._packets[self.sent % len(self._packets)])
        packet.pts = self.sent * self._step
        packet.time_base = self._time_base
        self.sent += 1
        return packet


class Sender:
    def __init__(self, clip: Clip) -> None:
        self.clip = clip
        self.go = asyncio.Event()
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.tracks: dict[str, dict[str, ClipTrack]] = {}

    async def handle(self, request: Message) -> Message | None:
        op = request["op"]
        if op == "offer":
            offers = {}
            for sid in request["ids"]:
                offers[str(sid)] = await self.offer(str(sid))
            return {"offers": offers}
        if op == "answer":
            pc = self.pcs[str(request["id"])]
            await pc.setRemoteDescription(RTCSessionDescription(request["sdp"], "answer"))
            return {}
        if op == "connected":
            deadline = time.monotonic() + float(request["timeout"])
            while any(pc.connectionState != "connected" for pc in self.pcs.values()):
                if time.monotonic() > deadline:
                    states = [pc.connectionState for pc in self.pcs.values()]
                    return {"error": f"not connected: {states}"}
                await asyncio.sleep(0.05)
            return {"connected": len(self.pcs)}
        if op == "go":
            for sid, offset in request["offsets"].items():
                for track in self.tracks[sid].values():
                    track.offset = float(offset)
            self.go.set()
            return {}
        if op == "mark":
            return self.counts()
        if op == "pause":
            for tracks in self.tracks.values():
                for track in tracks.values():
                    track.pause()
            await asyncio.sleep(0.1)  # let the last packets leave
            return self.counts()
        if op == "stop":
            for pc in self.pcs.values():
                await pc.close()
            reply_and_exit({"stopped": len(self.pcs)})
            return None
        return {"error": f"unknown op {op!r}"}

    async def offer(self, sid: str) -> str:
        pc = RTCPeerConnection()
        video = ClipTrack("video", self.clip.video, self.go)
        audio = ClipTrack("audio", self.clip.audio, self.go)
        for track in (audio, video):
            transceiver: RTCRtpTransceiver = pc.addTransceiver(track, direction="sendonly")
            del transceiver
        self.pcs[sid] = pc
        self.tracks[sid] = {"video": video, "audio": audio}
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)

    def counts(self) -> Message:
        return {
            "sent": {
                sid: {kind: track.sent for kind, track in tracks.items()}
                for sid, tracks in self.tracks.items()
            },
            "cpu_s": cpu_seconds(),
        }


async def main(clip_path: Path) -> None:
    loopback_only()
    sender = Sender(load_clip(clip_path))
    reply_and_exit({"ready": True})
    await serve(sender.handle)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(Path(sys.argv[1])))
