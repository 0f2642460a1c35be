"""Recorder cost: how many concurrent 640x480@30 VP8 + Opus streams the recorder keeps in real
time with no dropped frame, its CPU and memory per stream, and the post-call mix time per minute
of call (see docs/benchmarks.md, "Recording").

Two recording paths, in the same run, through the same harness:

  passthrough  the product's: appliance.recorder.passthrough.install(), then one
               appliance.recorder.sinks.open_sink(track, path, passthrough=True) per received
               track: encoded frames written to Matroska without decoding.
  stock        the reference: aiortc's decoder in its receiver and aiortc's MediaRecorder
               (decode + re-encode), through open_sink(..., passthrough=False) (`--stock-sink
               aiortc`: MediaRecorder used directly, one per track).

Load: a clip is encoded ONCE (bench/peers/clip.py: 640x480, 30 fps, keyframe every second,
about 1 Mbit/s VP8, Opus 20 ms frames of a tone); sender processes (bench/peers/sender.py, up
to 8 streams each) hand its packets to aiortc as av.Packets, which aiortc only packetizes, looped
with continuing timestamps and paced in real time. A "stream" is one participant: one
RTCPeerConnection with one video and one audio track. Each stream starts at the clip's first
keyframe; starts are spread over one second.

Per step (a mode and a number N of streams): a fresh receiver process (bench/peers/receiver.py)
answers N recvonly RTCPeerConnections (ICE on 127.0.0.1 only, signaling over the processes'
pipes) and records every track. After a warm-up, a window is measured: the receiver's CPU time
(utime + stime of all its threads, /proc/PID/stat) over wall time, and the time its threads were
runnable but waited for a CPU (/proc/PID/task/*/schedstat: the neighbours' share); its RSS
against the same process before the first connection; frames sent (senders' count) against
frames written (the sinks' `frames_written`); how late frames reach the sink (arrival minus
media time, relative to the earliest frame) and the receiver's event-loop lag. Then the senders
stop, the receiver gets up to 5 s to drain, and a frame sent but never written is lost (beyond
the 1 video and 4 audio frames per stream that aiortc's jitter buffer holds until a next frame
comes); the sinks are stopped and every video file's packets are counted with PyAV. A step
"keeps up" when no frame is lost and no video frame reached its sink more than 1 s late (which
also bounds the backlog). The number of streams goes up until a step does not keep up.

Mix: two participants' track files of `--mix-seconds` (made by pass-through sinks fed the clip's
packets as fast as they take them) are mixed by appliance.recorder.mix in a child process:
wall and CPU seconds, scaled to a minute of call.

Run from the repository root:

  .venv/bin/python bench/recorder.py                        # both ladders and the mix, ~3-4 min
  .venv/bin/python bench/recorder.py --quick --json out.json  # smoke run: N=1 each, 5 s
  .venv/bin/python bench/recorder.py --passthrough-steps 16 32 --stock-steps 2 --window 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata, util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from bench.peers.clip import AUDIO_CLOCK, AUDIO_FRAME, FPS, encode_clip, load_clip  # noqa: E402
from bench.peers.control import Child, Message, cpu_seconds, run_and_wait_seconds  # noqa: E402

STREAMS_PER_SENDER = 8
LAG_LIMIT_MS = 1000.0
DRAIN_S = 5.0
MIB = 1024 * 1024
#: Frames aiortc's jitter buffer still holds when a sender stops: a video frame is complete only
#: when a packet of the next one arrives, and the audio buffer prefetches 4 frames.
HELD_BACK = {"video": 1, "audio": 4}


def now() -> float:
    return time.monotonic()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def have_appliance_recorder() -> bool:
    if util.find_spec("appliance.recorder") is None:
        return False
    return all(util.find_spec(f"appliance.recorder.{m}") for m in ("passthrough", "sinks"))


# ---------------------------------------------------------------------------------------------
# One step: a receiver, its senders, N streams
# ---------------------------------------------------------------------------------------------


def totals(streams: dict[str, dict[str, dict[str, Any]]], key: str, kind: str) -> int:
    return sum(int(kinds[kind][key]) for kinds in streams.values() if kind in kinds)


def sent_total(marks: list[Message], kind: str) -> int:
    return sum(int(c[kind]) for m in marks for c in m["sent"].values())


def lost_frames(marks: list[Message], final: Message, kind: str) -> int:
    """Frames sent and never written, beyond those still held in aiortc's jitter buffer."""
    lost = 0
    for m in marks:
        for sid, sent in m["sent"].items():
            written = final["streams"].get(sid, {}).get(kind, {}).get("written", 0)
            lost += max(0, int(sent[kind]) - int(written) - HELD_BACK[kind])
    return lost


def count_packets(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for p in container.demux() if p.size)


async def run_step(
    args: argparse.Namespace, clip: Path, work: Path, mode: str, n: int
) -> dict[str, Any]:
    directory = work / f"{mode}-{n}"
    directory.mkdir()
    sink = "aiortc" if mode == "stock" and args.stock_sink == "aiortc" else "appliance"
    receiver = await Child.start(
        "receiver",
        "bench.peers.receiver",
        mode,
        str(directory),
        "--sink",
        sink,
        cwd=ROOT,
    )
    if args.pin:
        os.sched_setaffinity(receiver.pid, {1})
    senders: list[Child] = []
    try:
        base = await receiver.request({"op": "mark"})
        idle_cpu, idle_start = cpu_seconds(receiver.pid), now()
        await asyncio.sleep(1.0)  # the receiver's own CPU with no stream (its loop-lag probe)
        idle_cores = (cpu_seconds(receiver.pid) - idle_cpu) / (now() - idle_start)
        groups = [list(range(i, min(n, i + STREAMS_PER_SENDER))) for i in range(0, n, 8)]
        senders = list(
            await asyncio.gather(
                *(
                    Child.start(f"sender{k}", "bench.peers.sender", str(clip), cwd=ROOT)
                    for k in range(len(groups))
                )
            )
        )
        if args.pin:
            for sender in senders:
                os.sched_setaffinity(sender.pid, {0})
        setup = now()
        for sender, ids in zip(senders, groups, strict=True):
            offers = (await sender.request({"op": "offer", "ids": ids}))["offers"]
            for sid, sdp in offers.items():
                answer = await receiver.request({"op": "offer", "id": sid, "sdp": sdp})
                await sender.request({"op": "answer", "id": sid, "sdp": answer["sdp"]})
        await asyncio.gather(*(s.request({"op": "connected", "timeout": 30}, 40) for s in senders))
        setup_s = now() - setup
        await asyncio.sleep(0.3)
        # Starts spread over one second (keyframes of different streams do not coincide).
        await asyncio.gather(
            *(
                s.request({"op": "go", "offsets": {str(i): i / n for i in ids}})
                for s, ids in zip(senders, groups, strict=True)
            )
        )
        await asyncio.sleep(args.warmup + 1.0)

        async def mark() -> tuple[float, Message, list[Message], float, list[float], float]:
            cpu_r = cpu_seconds(receiver.pid)
            waited = run_and_wait_seconds(receiver.pid)[1]
            cpu_s = [cpu_seconds(s.pid) for s in senders]
            t = now()
            r, *s = await asyncio.gather(
                receiver.request({"op": "mark"}), *(x.request({"op": "mark"}) for x in senders)
            )
            return t, r, s, cpu_r, cpu_s, waited

        t0, r0, s0, cr0, cs0, w0 = await mark()
        await asyncio.sleep(args.window)
        t1, r1, s1, cr1, cs1, w1 = await mark()
        window = t1 - t0

        paused = list(await asyncio.gather(*(s.request({"op": "pause"}) for s in senders)))
        drain_start = now()
        while True:
            r2 = await receiver.request({"op": "mark"})
            done = all(lost_frames(paused, r2, kind) == 0 for kind in ("video", "audio"))
            if done or now() - drain_start > DRAIN_S:
                break
            await asyncio.sleep(0.1)
        drain_s = now() - drain_start
        final = await receiver.request({"op": "stop"}, wait=120)
        await asyncio.gather(*(s.request({"op": "stop"}) for s in senders))
    finally:
        for child in [receiver, *senders]:
            await child.close()

    row: dict[str, Any] = {"mode": mode, "streams": n, "sender_processes": len(senders)}
    row["setup_s"] = setup_s
    row["window_s"] = window
    row["receiver_cpu_cores"] = (cr1 - cr0) / window
    row["cpu_pct_per_stream"] = 100 * row["receiver_cpu_cores"] / n
    row["receiver_idle_cores"] = idle_cores
    row["receiver_runnable_waiting_cores"] = (w1 - w0) / window
    row["sender_cpu_cores"] = (sum(cs1) - sum(cs0)) / window
    rss0, rss1 = base["mem"]["VmRSS"], r1["mem"]["VmRSS"]
    row["rss_start_mib"] = rss0
    row["rss_mib"] = rss1
    row["rss_per_stream_mib"] = (rss1 - rss0) / n
    row["peak_rss_mib"] = final["mem"]["VmHWM"]
    for kind, rate in (("video", FPS), ("audio", AUDIO_CLOCK // AUDIO_FRAME)):
        sent_w = sent_total(s1, kind) - sent_total(s0, kind)
        written_w = totals(r1["streams"], "written", kind) - totals(r0["streams"], "written", kind)
        sent_all = sent_total(paused, kind)
        written_all = totals(final["streams"], "written", kind)
        row[kind] = {
            "sent_window": sent_w,
            "written_window": written_w,
            "written_pct": 100 * written_w / sent_w if sent_w else 0.0,
            "sender_realtime_pct": 100 * sent_w / (rate * n * window),
            "sent": sent_all,
            "written": written_all,
            "missing": sent_all - written_all,
            "lost": lost_frames(paused, final, kind),
            "drop_pct": 100 * lost_frames(paused, final, kind) / sent_all if sent_all else 0.0,
            "lag_max_ms": max(
                (k[kind]["lag_max_ms"] for k in r1["streams"].values() if kind in k), default=0.0
            ),
            "lag_end_ms": max(
                (k[kind]["lag_now_ms"] for k in r1["streams"].values() if kind in k), default=0.0
            ),
            "rtp_packets_lost": final["rtp_packets_lost"].get(kind, 0),
        }
    row["loop_lag_max_ms"] = r1["loop_lag_max_ms"]
    row["loop_lag_mean_ms"] = r1["loop_lag_mean_ms"]
    row["drain_s"] = drain_s
    row["sink_stop_s"] = final["sink_stop_s"]
    row["tracks"] = final["tracks"]
    row["errors"] = final["errors"]
    # Every video file: its packets, against what its sink said it wrote.
    mismatched = []
    for path in sorted(directory.glob("*-video.*")):
        count = count_packets(path)
        written = final["files"].get(path.name.split(".")[0], {}).get("frames_written")
        if written is not None and count != written:
            mismatched.append(f"{path.name}: {count} packets, sink said {written}")
    row["video_files"] = len(list(directory.glob("*-video.*")))
    row["file_mismatches"] = mismatched
    row["kept_up"] = bool(
        row["tracks"] == 2 * n
        and not row["errors"]
        and row["video"]["lost"] == 0
        and row["audio"]["lost"] == 0
        and row["video"]["lag_max_ms"] < LAG_LIMIT_MS
    )
    shutil.rmtree(directory, ignore_errors=True)
    return row


def describe_row(row: dict[str, Any]) -> str:
    v, a = row["video"], row["audio"]
    return (
        f"  {row['mode']:11} N={row['streams']:2}: receiver {row['receiver_cpu_cores']:.2f} cores "
        f"({row['cpu_pct_per_stream']:.1f} %/stream), RSS {row['rss_mib']:.0f} MiB "
        f"(+{row['rss_per_stream_mib']:.2f}/stream), video {v['written']}/{v['sent']} "
        f"(lost {v['lost']}, lag max {v['lag_max_ms']:.0f} ms), audio lost "
        f"{a['lost']}, senders {row['sender_cpu_cores']:.2f} cores, receiver waited for a CPU "
        f"{row['receiver_runnable_waiting_cores']:.2f} cores, "
        f"{'kept up' if row['kept_up'] else 'DID NOT KEEP UP'}"
    )


async def ladder(
    args: argparse.Namespace, clip: Path, work: Path, mode: str, steps: list[int]
) -> list[dict[str, Any]]:
    rows = []
    for n in steps:
        try:
            row = await run_step(args, clip, work, mode, n)
        except (RuntimeError, TimeoutError) as exc:
            row = {"mode": mode, "streams": n, "kept_up": False, "failed": repr(exc)}
            print(f"  {mode} N={n}: failed {exc!r}", flush=True)
            rows.append(row)
            break
        print(describe_row(row), flush=True)
        rows.append(row)
        if not row["kept_up"]:
            break
    return rows


# ---------------------------------------------------------------------------------------------
# Mix
# ---------------------------------------------------------------------------------------------


async def run_mix(args: argparse.Namespace, clip: Path, work: Path) -> dict[str, Any]:
    """Two participants' track files of `--mix-seconds`, mixed as the recorder mixes them:
    `python -m appliance.recorder.mix MANIFEST OUTPUT` (which renices itself to 10)."""
    from bench.peers.tracks import participant

    directory = work / "mix"
    directory.mkdir()
    loaded = load_clip(clip)
    made = now()
    groups = [
        await participant(loaded, directory, "alice", args.mix_seconds, 0.0),
        await participant(loaded, directory, "bob", args.mix_seconds, 0.4),
    ]
    make_s = now() - made
    manifest = directory / "manifest.json"
    manifest.write_text(
        json.dumps({"inputs": [[{**asdict(t), "path": str(t.path)} for t in g] for g in groups]})
    )
    output = directory / "mixed.webm"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = now()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance.recorder.mix",
        str(manifest),
        str(output),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    wall = now() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer = json.loads(out.decode().strip().splitlines()[-1])
    if proc.returncode != 0 or not answer.get("ok"):
        raise RuntimeError(f"mix failed: {answer}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    streams = []
    with av.open(str(output)) as mixed:
        for st in mixed.streams:
            ctx: Any = st.codec_context
            size = f" {ctx.width}x{ctx.height}" if st.type == "video" else ""
            streams.append(f"{st.type} {ctx.name}{size}")
    call_s = args.mix_seconds + 0.4
    minutes = call_s / 60
    result = {
        "call_seconds": call_s,
        "track_files_s": make_s,
        "input_mib": sum(t.path.stat().st_size for g in groups for t in g) / MIB,
        "mix_wall_s": wall,
        "mix_cpu_s": cpu,
        "wall_s_per_min": wall / minutes,
        "cpu_s_per_min": cpu / minutes,
        "realtime_factor": wall / call_s,
        "output": {
            "duration_s": answer["duration"],
            "mib": answer["size"] / MIB,
            "content_type": answer["content_type"],
            "streams": streams,
        },
    }
    shutil.rmtree(directory, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "?"
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in lscpu.splitlines():
        if line.startswith("Model name"):
            model = line.split(":", 1)[1].strip()
    libs = ", ".join(f"{n} {metadata.version(n)}" for n in ("aiortc", "aioice", "av"))
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "libraries": libs,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load average at start": loadavg(),
    }


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    kept = [r for r in rows if r.get("kept_up")]
    return max(kept, key=lambda r: r["streams"]) if kept else None


def print_report(info: dict[str, Any]) -> None:
    print("\n## machine")
    for key, value in info["machine"].items():
        print(f"- {key}: {value}")
    print(f"- load average at end: {info['load average at end']}; wall {info['wall_s']:.0f} s")
    c = info["clip"]
    print(
        f"- clip: {c['seconds']} s, {c['video_frames']} video frames ({c['keyframes']} keyframes, "
        f"{c['video_kbit_s']:.0f} kbit/s), {c['audio_frames']} Opus frames "
        f"({c['audio_kbit_s']:.0f} kbit/s)"
    )
    print(
        "\n| mode | streams | receiver cores | % core/stream | RSS MiB | MiB/stream "
        "| video written/sent | lost v/a | lag max ms | loop lag max ms | waited for CPU "
        "| sender cores | kept up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in info["steps"]:
        if "failed" in row:
            print(f"| {row['mode']} | {row['streams']} | failed: {row['failed']} |")
            continue
        v, a = row["video"], row["audio"]
        print(
            f"| {row['mode']} | {row['streams']} | {row['receiver_cpu_cores']:.2f} "
            f"| {row['cpu_pct_per_stream']:.1f} | {row['rss_mib']:.0f} "
            f"| {row['rss_per_stream_mib']:.2f} | {v['written']}/{v['sent']} "
            f"| {v['lost']}/{a['lost']} | {v['lag_max_ms']:.0f} "
            f"| {row['loop_lag_max_ms']:.0f} | {row['receiver_runnable_waiting_cores']:.2f} "
            f"| {row['sender_cpu_cores']:.2f} "
            f"| {'yes' if row['kept_up'] else 'no'} |"
        )
    for mode, summary in info["summary"].items():
        print(f"- {mode}: {summary}")
    mix = info.get("mix")
    if mix:
        print(
            f"\nmix of 2 x {mix['call_seconds']:.0f} s: wall {mix['mix_wall_s']:.1f} s, CPU "
            f"{mix['mix_cpu_s']:.1f} s -> {mix['wall_s_per_min']:.1f} s wall and "
            f"{mix['cpu_s_per_min']:.1f} s CPU per minute of call "
            f"({mix['realtime_factor']:.2f}x real time); output {mix.get('output', {})}"
        )


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    top = best(rows)
    measured = [r for r in rows if "failed" not in r]
    return {
        "max_streams_kept_up": top["streams"] if top else 0,
        "cpu_pct_per_stream_at_max": top["cpu_pct_per_stream"] if top else None,
        "rss_per_stream_mib_at_max": top["rss_per_stream_mib"] if top else None,
        "cpu_pct_per_stream_median": (
            statistics.median(r["cpu_pct_per_stream"] for r in measured) if measured else None
        ),
        "first_failing_step": next((r["streams"] for r in rows if not r.get("kept_up")), None),
    } | marginal(measured, top)


def marginal(rows: list[dict[str, Any]], top: dict[str, Any] | None) -> dict[str, float]:
    """CPU and RSS each stream adds: from the smallest step to the largest that kept up (the
    smallest step carries the fixed costs: the loop-lag probe, the first sink's set-up)."""
    low = min(rows, key=lambda r: r["streams"], default=None)
    if top is None or low is None or top["streams"] == low["streams"]:
        return {}
    n = top["streams"] - low["streams"]
    return {
        "marginal_cpu_pct_per_stream": 100
        * (top["receiver_cpu_cores"] - low["receiver_cpu_cores"])
        / n,
        "marginal_rss_mib_per_stream": (top["rss_mib"] - low["rss_mib"]) / n,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = now()
    info: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    passthrough = have_appliance_recorder()
    info["passthrough_available"] = passthrough
    mix_available = util.find_spec("appliance.recorder.mix") is not None if passthrough else False
    with tempfile.TemporaryDirectory(prefix="bench-recorder-") as tmp:
        work = Path(tmp)
        clip = work / "clip.mkv"
        info["clip"] = encode_clip(clip, args.clip_seconds, noise=args.noisy_clip)
        print(f"clip: {info['clip']}", flush=True)
        rows: list[dict[str, Any]] = []
        if passthrough:
            rows += await ladder(args, clip, work, "passthrough", args.passthrough_steps)
        else:
            print("appliance.recorder is not there yet: pass-through skipped", flush=True)
            args.stock_sink = "aiortc"
        rows += await ladder(args, clip, work, "stock", args.stock_steps)
        info["steps"] = rows
        info["summary"] = {
            mode: summarize([r for r in rows if r["mode"] == mode])
            for mode in ("passthrough", "stock")
            if any(r["mode"] == mode for r in rows)
        }
        info["mix"] = await run_mix(args, clip, work) if mix_available and not args.no_mix else None
    info["wall_s"] = now() - started
    info["load average at end"] = loadavg()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: N=1 each, 5 s window")
    parser.add_argument(
        "--passthrough-steps", type=int, nargs="+", default=[1, 4, 8, 16, 20, 24, 28, 32, 40, 48]
    )
    parser.add_argument("--stock-steps", type=int, nargs="+", default=[1, 2, 3, 4, 6])
    parser.add_argument("--stock-sink", choices=["appliance", "aiortc"], default="appliance")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument(
        "--noisy-clip", action="store_true", help="grain in the picture (harder to re-encode)"
    )
    parser.add_argument("--mix-seconds", type=float, default=60.0)
    parser.add_argument("--no-mix", action="store_true")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="receiver on CPU 1, senders on CPU 0 (the receiver's threads share one core)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.quick:
        args.passthrough_steps, args.stock_steps = [1], [1]
        args.warmup, args.window, args.clip_seconds, args.mix_seconds = 1.0, 5.0, 2.0, 5.0
    info = asyncio.run(run(args))
    print_report(info)
    if args.json:
        args.json.write_text(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    main()
