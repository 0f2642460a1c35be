"""The recorder's RTCPeerConnection to one participant: receive only, VP8 and Opus only, one file
per received track."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from appliance.recorder.sinks import TrackFile, TrackSink, open_sink

log = logging.getLogger(__name__)

#: What the recorder accepts: what WebRTC carries everywhere and what the WebM file holds.
WANTED_CODECS = {"video": ("video/vp8", "video/rtx"), "audio": ("audio/opus",)}


def ice_configuration(ice: dict[str, Any] | None) -> RTCConfiguration:
    """`RTCConfiguration` from the `iceServers` dict web's TURN service makes."""
    servers = [
        RTCIceServer(
            urls=entry["urls"], username=entry.get("username"), credential=entry.get("credential")
        )
        for entry in (ice or {}).get("iceServers", [])
    ]
    return RTCConfiguration(iceServers=servers)


class ParticipantPeer:
    def __init__(
        self,
        user_id: int,
        folder: Path,
        *,
        passthrough: bool,
        t0: float,
        ice: dict[str, Any] | None = None,
    ) -> None:
        self.user_id = user_id
        self.pc = RTCPeerConnection(ice_configuration(ice))
        self.sinks: list[TrackSink] = []
        self.failed = asyncio.Event()  # the connection failed or closed before stop
        self._folder = folder
        self._passthrough = passthrough
        self._t0 = t0
        self._pending: list[dict[str, Any] | None] = []
        self._remote_set = False
        self._closed = False
        self._starts: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            receiver = self._receiver_of(track)
            index = len(self.sinks)
            path = folder / f"{user_id}-{index}-{track.kind}.{'mkv' if passthrough else 'webm'}"
            sink = open_sink(track, path, passthrough=passthrough, t0=t0, receiver=receiver)
            self.sinks.append(sink)
            self._starts.append(asyncio.create_task(sink.start()))

        @self.pc.on("connectionstatechange")
        async def _on_state() -> None:
            if self.pc.connectionState in ("failed", "closed") and not self._closed:
                self.failed.set()

    def _receiver_of(self, track: MediaStreamTrack) -> RTCRtpReceiver | None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                return transceiver.receiver
        return None

    @property
    def answered(self) -> bool:
        return self._remote_set

    @property
    def has_media(self) -> bool:
        """Every track this participant sends has its first frame in a file."""
        return bool(self.sinks) and all(s.first_frame.is_set() for s in self.sinks)

    async def answer(self, offer: dict[str, Any]) -> dict[str, str]:
        """Apply the participant's offer; the answer (with its candidates inside)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "recvonly"
            capabilities = RTCRtpReceiver.getCapabilities(transceiver.kind)
            wanted = WANTED_CODECS.get(transceiver.kind, ())
            offered = capabilities.codecs if capabilities is not None else []
            codecs = [c for c in offered if c.mimeType.lower() in wanted]
            transceiver.setCodecPreferences(codecs)
        self._remote_set = True
        await self._flush()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        description = self.pc.localDescription
        return {"type": description.type, "sdp": description.sdp}

    async def add_candidate(self, candidate: dict[str, Any] | None) -> None:
        self._pending.append(candidate)
        if self._remote_set:
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            item = self._pending.pop(0)
            line = "" if item is None else str(item.get("candidate") or "")
            if not line:
                await self.pc.addIceCandidate(None)
                continue
            try:
                candidate = candidate_from_sdp(line.removeprefix("a=").removeprefix("candidate:"))
            except (ValueError, IndexError):
                log.info("ignored a malformed ICE candidate from user %d", self.user_id)
                continue
            candidate.sdpMid = item.get("sdpMid") if item else None
            candidate.sdpMLineIndex = item.get("sdpMLineIndex") if item else None
            with contextlib.suppress(ValueError):  # a candidate for no known m-line
                await self.pc.addIceCandidate(candidate)

    async def halt(self) -> None:
        """Take no more frames on any track (see `TrackSink.halt`)."""
        await asyncio.gather(*self._starts, return_exceptions=True)
        for sink in self.sinks:
            await sink.halt()

    async def close(self) -> list[TrackFile]:
        """Stop receiving, finish every file; raises what went wrong writing one."""
        self._closed = True
        await asyncio.gather(*self._starts, return_exceptions=True)
        files: list[TrackFile] = []
        error: BaseException | None = None
        for sink in self.sinks:
            try:
                files.append(await sink.stop())
            except Exception as exc:
                error = error or exc
        await self.pc.close()
        if error is not None:
            raise error
        return files

    async def abort(self) -> None:
        """Close without keeping anything (the files are removed with the folder)."""
        self._closed = True
        with contextlib.suppress(Exception):
            await self.close()
