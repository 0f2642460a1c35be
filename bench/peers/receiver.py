"""The recorder side of bench/recorder.py, alone in its process so its CPU time and memory are
its own: recvonly RTCPeerConnections, each received track written by a sink of
appliance/recorder/sinks.py (`open_sink(track, path, passthrough=...)`, after
`passthrough.install()` in pass-through mode), or, with `--sink aiortc`, straight into
aiortc's stock `MediaRecorder` (one per track), the reference. Run by the parent as
`python -m bench.peers.receiver MODE DIR [--sink appliance|aiortc]`; requests on stdin:

  {"op": "offer", "id": k, "sdp": ..}  -> {"sdp": answer}
  {"op": "mark"}                       -> counters (see `Receiver.counts`), window stats reset
  {"op": "stop"}                       -> sinks stopped (files finalized), PCs closed, exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamTrack

from bench.peers.control import Message, cpu_seconds, loopback_only, memory_mib, serve


class Sink(Protocol):
    @property
    def frames_written(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> Any: ...


class Meter:
    """Wraps a received track's `recv` in place (the sink must get aiortc's own track object:
    the pass-through marks its queue) and notes how late each frame is: its arrival time minus
    its media time, relative to the earliest frame. A receiver that keeps up holds this near
    0; one that falls behind sees it grow."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.received = 0
        self.lag_max = 0.0
        self.lag_now = 0.0
        self._origin: float | None = None
        self._clock = 90_000 if track.kind == "video" else 48_000
        inner = track.recv

        async def recv() -> Any:
            frame = await inner()
            self.note(frame)
            return frame

        track.recv = recv  # type: ignore[method-assign]

    def note(self, frame: Any) -> None:
        now = time.monotonic()
        self.received += 1
        pts, time_base = getattr(frame, "pts", None), getattr(frame, "time_base", None)
        if pts is not None and time_base is not None:
            media = float(pts * time_base)  # a decoded frame
        elif isinstance(getattr(frame, "timestamp", None), int):
            media = frame.timestamp / self._clock  # pass-through: RTP clock units
        else:
            return
        if self._origin is None or now - media < self._origin:
            self._origin = now - media  # the earliest frame so far sets "on time"
        self.lag_now = now - media - self._origin
        self.lag_max = max(self.lag_max, self.lag_now)


class StockSink:
    """aiortc's MediaRecorder on one track (decode in aiortc's receiver, re-encode here)."""

    def __init__(self, track: MediaStreamTrack, path: Path) -> None:
        self._counter = _Counting(track)
        self._recorder = MediaRecorder(str(path.with_suffix(".webm")))
        self._recorder.addTrack(self._counter)

    @property
    def frames_written(self) -> int:
        return self._counter.count

    async def start(self) -> None:
        await self._recorder.start()

    async def stop(self) -> Any:
        await self._recorder.stop()
        return None


class _Counting(MediaStreamTrack):
    """Counts the frames MediaRecorder takes. It encodes and muxes each one synchronously
    right after `recv` returns it, so no other task can read the count in between."""

    def __init__(self, inner: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = inner.kind
        self.inner = inner
        self.count = 0

    async def recv(self) -> Any:
        frame = await self.inner.recv()
        self.count += 1
        return frame


@dataclass
class Stream:
    sid: str
    pc: RTCPeerConnection
    sinks: dict[str, Sink] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


class Receiver:
    def __init__(self, mode: str, directory: Path, sink: str) -> None:
        self.mode = mode
        self.directory = directory
        self.sink_impl = sink
        self.streams: dict[str, Stream] = {}
        self.loop_lag_max = 0.0
        self.loop_lag_sum = 0.0
        self.loop_lag_n = 0
        self.errors: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._open_sink: Any = None
        if sink == "appliance":
            from appliance.recorder import passthrough, sinks

            if mode == "passthrough":
                passthrough.install()
            self._open_sink = sinks.open_sink
        elif mode == "passthrough":
            raise SystemExit("pass-through needs --sink appliance")

    async def monitor_loop(self) -> None:
        """Event-loop lag: how late a 10 ms sleep wakes up."""
        while True:
            start = time.monotonic()
            await asyncio.sleep(0.01)
            late = time.monotonic() - start - 0.01
            self.loop_lag_max = max(self.loop_lag_max, late)
            self.loop_lag_sum += late
            self.loop_lag_n += 1

    async def handle(self, request: Message) -> Message | None:
        op = request["op"]
        if op == "offer":
            return {"sdp": await self.answer(str(request["id"]), request["sdp"])}
        if op == "mark":
            return self.counts()
        if op == "stop":
            return await self.stop()
        return {"error": f"unknown op {op!r}"}

    async def answer(self, sid: str, sdp: str) -> str:
        pc = RTCPeerConnection()
        stream = Stream(sid, pc)
        self.streams[sid] = stream

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            # Synchronously, before the first frame (as the recorder service does).
            try:
                self.record(stream, track)
            except Exception as exc:
                self.errors.append(f"{sid}/{track.kind}: {exc!r}")

        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    def record(self, stream: Stream, track: MediaStreamTrack) -> None:
        path = self.directory / f"{stream.sid}-{track.kind}.mkv"
        receiver = next((r for r in stream.pc.getReceivers() if r.track is track), None)
        sink: Sink
        if self._open_sink is not None:
            passthrough = self.mode == "passthrough"
            extra = {"receiver": receiver} if passthrough else {}
            sink = self._open_sink(track, path, passthrough=passthrough, **extra)
        else:
            sink = StockSink(track, path)
        stream.meters[track.kind] = Meter(track)
        stream.sinks[track.kind] = sink
        task = asyncio.create_task(sink.start())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def counts(self) -> Message:
        loop_mean = self.loop_lag_sum / self.loop_lag_n if self.loop_lag_n else 0.0
        out: Message = {
            "cpu_s": cpu_seconds(),
            "mem": memory_mib(),
            "tracks": sum(len(s.sinks) for s in self.streams.values()),
            "loop_lag_max_ms": self.loop_lag_max * 1000,
            "loop_lag_mean_ms": loop_mean * 1000,
            "errors": self.errors,
            "streams": {
                s.sid: {
                    kind: {
                        "written": sink.frames_written,
                        "received": s.meters[kind].received,
                        "lag_max_ms": s.meters[kind].lag_max * 1000,
                        "lag_now_ms": s.meters[kind].lag_now * 1000,
                    }
                    for kind, sink in s.sinks.items()
                }
                for s in self.streams.values()
            },
        }
        self.loop_lag_max = self.loop_lag_sum = 0.0
        self.loop_lag_n = 0
        for s in self.streams.values():
            for meter in s.meters.values():
                meter.lag_max = meter.lag_now
        return out

    async def stop(self) -> Message:
        lost: dict[str, int] = {"audio": 0, "video": 0}
        for s in self.streams.values():
            report = await s.pc.getStats()
            for stat in report.values():
                if getattr(stat, "type", "") == "inbound-rtp":
                    lost[stat.kind] = lost.get(stat.kind, 0) + int(stat.packetsLost)
        counts = self.counts()
        start = time.monotonic()
        files: dict[str, dict[str, Any]] = {}
        for s in self.streams.values():
            for kind, sink in s.sinks.items():
                result = await sink.stop()
                files[f"{s.sid}-{kind}"] = _describe(result, sink)
        stop_s = time.monotonic() - start
        for s in self.streams.values():
            await s.pc.close()
        for task in list(self._tasks):
            task.cancel()
        return counts | {"rtp_packets_lost": lost, "sink_stop_s": stop_s, "files": files}


def _describe(result: Any, sink: Sink) -> dict[str, Any]:
    out: dict[str, Any] = {"frames_written": sink.frames_written}
    for name in ("path", "kind", "start_offset", "frames"):
        value = getattr(result, name, None)
        if value is not None:
            out[name] = str(value) if isinstance(value, Path) else value
    return out


async def main(args: argparse.Namespace) -> None:
    loopback_only()
    receiver = Receiver(args.mode, args.directory, args.sink)
    monitor = asyncio.create_task(receiver.monitor_loop())
    gc.collect()
    await asyncio.sleep(0.2)
    sys.stdout.write(
        json.dumps({"ready": True, "mem": memory_mib(), "cpu_s": cpu_seconds()}) + "\n"
    )
    sys.stdout.flush()

    async def handle(request: Message) -> Message | None:
        reply = await receiver.handle(request)
        if request["op"] == "stop":
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            return None
        return reply

    await serve(handle)
    monitor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await monitor


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["passthrough", "stock"])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--sink", choices=["appliance", "aiortc"], default="appliance")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(parser.parse_args()))
