"""Call set-up time through the appliance, against two aiortc peers wired directly (see
docs/benchmarks.md, "Call set-up time").

One process runs the real web service (`tests.support.running_server`, in-process on a free
127.0.0.1 port), a real coturn (`tests.turn_support.running_turn`, loopback only, loopback peers
allowed) and two users, alice (caller) and bob (callee), each a python-socketio client. A call:

  call:start -> call:incoming -> bob creates his Peer -> bob sends call:accepted   [t0]
  -> alice sees call:accepted, creates her Peer, createOffer + setLocalDescription,
     webrtc:offer and trickled webrtc:ice-candidate (tests/webrtc_peer.py's Peer)
  -> bob answers the same way -> ICE checks -> DTLS
  -> both RTCPeerConnections report connectionState "connected"                  [t1]
  -> call:end, both closed.

The reference is two RTCPeerConnections in this process with offer/answer handed over directly
(no server, candidates inside the SDP), timed from createOffer to both "connected". Both sides
send the same tracks as tests/webrtc_peer.py's Peer: a 48 kHz tone and a 160x120 video pattern.

Modes: `host` (no iceServers, host candidates only), `relay` (iceTransportPolicy "relay", the
full GET /api/turn answer), plus fewer calls of `relay-udp` (relay, only the udp TURN URL),
`all-full` (the default policy "all" with the full answer, as docs/protocol.md tells clients to
use it) and `relay, aioice retrigger patch` (relay with an experimental bench-only patch to
aioice's connectivity checks, to confirm where relay mode's 500 ms go). Each (side, mode) has
its own pair of users (coturn's per-user allocation quota). Rounds alternate the modes.

Then a gathering probe times setLocalDescription alone on one RTCPeerConnection per iceServers
variant, including a STUN / TURN URL pointing at a silent 127.0.0.1 port (a firewalled
server), which shows aioice's 5 s gathering wait; and a short phase runs host calls through a
server on tests.support's own listening socket, which leaves Nagle on (see bind_loopback_tcp).

All ICE traffic stays on 127.0.0.1: aioice's host addresses are patched to ["127.0.0.1"] (as
tests.webrtc_peer.loopback_only does) and every candidate sent is checked. Run from the
repository root:

  .venv/bin/python bench/call_setup.py                 # 50 calls per mode, ~2-3 minutes
  .venv/bin/python bench/call_setup.py --calls 10 --extra-calls 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aioice.ice  # noqa: E402
from aiortc import (  # noqa: E402
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy  # noqa: E402

import tests.support  # noqa: E402
from tests.support import EventClient, RunningServer, running_server  # noqa: E402
from tests.test_calls import start_call  # noqa: E402
from tests.test_chat import Person, person  # noqa: E402
from tests.turn_support import running_turn, turn_overrides  # noqa: E402
from tests.webrtc_peer import PatternTrack, Peer, ToneTrack  # noqa: E402

SLOW = 1.0  # seconds: a sample above this is flagged and printed in full
CALL_TIMEOUT = 10.0


def now() -> float:
    return time.perf_counter()


def keep_ice_on_loopback() -> None:
    """tests.webrtc_peer.loopback_only without pytest's monkeypatch: host candidates only on
    127.0.0.1 (no other interface, no IPv6)."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


HARNESS_BIND_LOOPBACK = tests.support.bind_loopback


def bind_loopback_tcp() -> socket.socket:
    """tests.support.bind_loopback with the protocol given (IPPROTO_TCP instead of 0).

    asyncio's default loop only sets TCP_NODELAY on accepted sockets whose `proto` is
    IPPROTO_TCP; the test harness's listening socket has proto 0, so its connections keep Nagle
    on and a small server->client write waiting behind an unacknowledged one stalls for the
    client's 40 ms delayed ACK. `appliance web` (uvicorn binding host:port itself, on uvloop)
    has TCP_NODELAY on every connection, so the benchmark serves the same way by default."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def server_nodelay(server: RunningServer) -> int:
    """TCP_NODELAY of the server's side of the users' connections (1 on, 0 off)."""
    port = int(server.url.rsplit(":", 1)[1])
    values = set()
    for obj in gc.get_objects():  # nothing exposes the accepted sockets; find them
        if isinstance(obj, socket.socket) and obj.fileno() != -1:
            with contextlib.suppress(OSError):
                if (
                    obj.family == socket.AF_INET
                    and obj.type == socket.SOCK_STREAM
                    and obj.getsockname()[1] == port
                    and obj.getpeername()
                ):
                    values.add(obj.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    return min(values) if values else -1


# ---------------------------------------------------------------------------------------------
# iceServers variants
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    name: str
    relay: bool  # iceTransportPolicy "relay" (else "all")
    servers: str  # "none" | "full" | "turn-udp" | "turn-tcp" | "stun" | ...
    retrigger: bool = False  # the experimental aioice patch below, for this mode only


MAIN_MODES = [Mode("host", False, "none"), Mode("relay", True, "full")]
EXTRA_MODES = [
    Mode("relay-udp", True, "turn-udp"),
    Mode("all-full", False, "full"),
    Mode("relay, aioice retrigger patch", True, "full", retrigger=True),
]


# ---------------------------------------------------------------------------------------------
# Experiment: RFC 8445 section 7.3.1.4 triggered checks for In-Progress pairs in aioice
# ---------------------------------------------------------------------------------------------

_original_check_incoming = aioice.ice.Connection.check_incoming
RETRIGGER = {"on": False}


def _check_incoming_retrigger(
    self: aioice.ice.Connection, message: Any, addr: tuple[str, int], protocol: Any
) -> None:
    """aioice 0.13 ignores an incoming check on a pair whose own check is In-Progress and waits
    for that check's next retransmission (RTO 500 ms). RFC 8445 section 7.3.1.4 sends a
    triggered check at once instead. With relay candidates on both sides the first check of
    whichever side sends first is always lost (the other side's TURN allocation has no
    permission for it yet), so in relay mode every call waits those 500 ms.

    This experiment re-sends the pending check request (same transaction, so its response still
    completes it) when the peer's check arrives. Bench only; never the product."""
    if RETRIGGER["on"]:
        for pair in self._check_list:
            if (
                pair.protocol is protocol
                and pair.remote_addr == addr
                and pair.state == aioice.ice.CandidatePair.State.IN_PROGRESS
            ):
                for transaction in list(protocol.transactions.values()):
                    # Transaction's name-mangled private fields: no public accessor in aioice.
                    if transaction._Transaction__addr == addr:  # type: ignore[attr-defined]
                        protocol.send_stun(transaction._Transaction__request, addr)  # type: ignore[attr-defined]
    _original_check_incoming(self, message, addr, protocol)


aioice.ice.Connection.check_incoming = _check_incoming_retrigger  # type: ignore[method-assign]


def ice_variant(body: dict[str, Any] | None, servers: str, silent_port: int = 0) -> dict[str, Any]:
    """Derive an iceServers answer from GET /api/turn's `body`."""
    if servers == "none" or body is None:
        return {"iceServers": []}
    stun_entry, turn_entry = body["iceServers"]
    udp = [u for u in turn_entry["urls"] if u.endswith("transport=udp")]
    tcp = [u for u in turn_entry["urls"] if u.endswith("transport=tcp")]
    silent = f"127.0.0.1:{silent_port}"
    turn = {k: v for k, v in turn_entry.items() if k != "urls"}
    variants: dict[str, list[dict[str, Any]]] = {
        "full": [stun_entry, turn_entry],
        "turn-udp": [{**turn, "urls": udp}],
        "turn-tcp": [{**turn, "urls": tcp}],
        "turn-tcp-first": [stun_entry, {**turn, "urls": tcp + udp}],
        "stun": [stun_entry],
        "silent-stun": [{"urls": [f"stun:{silent}"]}],
        "silent-stun+turn": [{"urls": [f"stun:{silent}"]}, turn_entry],
        "silent-turn": [{**turn, "urls": [f"turn:{silent}?transport=udp"]}],
    }
    return {"iceServers": variants[servers]}


def rtc_configuration(ice: dict[str, Any], relay: bool) -> RTCConfiguration:
    servers = [
        RTCIceServer(urls=e["urls"], username=e.get("username"), credential=e.get("credential"))
        for e in ice["iceServers"]
    ]
    policy = RTCIceTransportPolicy.RELAY if relay else RTCIceTransportPolicy.ALL
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)


def candidate_fields(line: str) -> tuple[str, str]:
    """(address, type) of an `a=candidate:` / `candidate:` line."""
    parts = line.removeprefix("a=").split()
    return parts[4], parts[parts.index("typ") + 1]


def sdp_candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def check_loopback(lines: list[str], what: str) -> list[str]:
    types = []
    for line in lines:
        address, kind = candidate_fields(line)
        if address != "127.0.0.1":
            raise RuntimeError(f"{what}: candidate off 127.0.0.1: {line}")
        types.append(kind)
    return types


def ice_transports(pc: RTCPeerConnection) -> int:
    return len({id(t.receiver.transport) for t in pc.getTransceivers()})


def describe(pcs: list[RTCPeerConnection], marks: list[dict[str, float]], t0: float) -> str:
    """Where a call that did not connect got stuck."""
    parts = []
    for pc, mark in zip(pcs, marks, strict=True):
        local = pc.localDescription
        lines = sdp_candidates(local.sdp) if local else []
        stamps = {k: round((v - t0) * 1000) for k, v in mark.items()}
        parts.append(
            f"[ice {pc.iceConnectionState} conn {pc.connectionState} gathering "
            f"{pc.iceGatheringState} local candidates {len(lines)} marks ms {stamps}]"
        )
    return " ".join(parts)


def watch_states(pc: RTCPeerConnection, marks: dict[str, float]) -> None:
    """Record the first time each ICE / connection state is reached (synchronous handlers, so
    the stamp is taken when aiortc emits the change)."""

    @pc.on("iceconnectionstatechange")
    def _ice() -> None:
        marks.setdefault(f"ice_{pc.iceConnectionState}", now())

    @pc.on("connectionstatechange")
    def _conn() -> None:
        marks.setdefault(f"conn_{pc.connectionState}", now())


# ---------------------------------------------------------------------------------------------
# Through the appliance
# ---------------------------------------------------------------------------------------------


class TimedPeer(Peer):
    """tests.webrtc_peer.Peer with time stamps on each step of the set-up."""

    def __init__(self, client: EventClient, ice: dict[str, Any], *, relay: bool) -> None:
        start = now()
        super().__init__(client, ice, relay=relay)
        self.marks: dict[str, float] = {"pc_start": start, "pc_created": now()}
        self.trickled = asyncio.Event()
        watch_states(self.pc, self.marks)

    async def _describe(self, make: Callable[[], Any], kind: str) -> None:
        self.marks["create_start"] = now()
        description = await make()
        self.marks["sld_start"] = now()
        await self.pc.setLocalDescription(description)
        self.marks["sld_end"] = now()
        await self._send_description(kind)
        self.marks["sent_all"] = now()
        self.trickled.set()

    async def offer(self) -> None:
        await self._describe(self.pc.createOffer, "offer")

    async def take_offer(self, offer: dict[str, Any]) -> None:
        self.marks["got_offer"] = now()
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await self._flush()
        await self._describe(self.pc.createAnswer, "answer")

    async def take_answer(self, answer: dict[str, Any]) -> None:
        self.marks["got_answer"] = now()
        await super().take_answer(answer)
        self.marks["answer_applied"] = now()

    async def take_candidate(self, candidate: dict[str, Any] | None) -> None:
        key = "got_eoc" if candidate is None else "got_first_candidate"
        self.marks.setdefault(key, now())
        await super().take_candidate(candidate)


@dataclass
class Sample:
    kind: str  # "appliance" | "reference"
    mode: str
    total: float | None  # seconds, None if the call failed
    phases: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str = ""


APPLIANCE_PHASES = [
    "accept hop",  # bob sends call:accepted -> alice's socket has it
    "caller PC",  # RTCPeerConnection + tracks constructed
    "caller gather",  # createOffer + setLocalDescription (ICE gathering)
    "offer hop",  # webrtc:offer through the server to bob's pump
    "callee gather",  # setRemoteDescription + createAnswer + setLocalDescription
    "answer hop",  # webrtc:answer (after bob's sLD) through the server to alice's pump
    "ICE",  # alice has the answer -> both iceConnectionState "completed"
    "DTLS",  # both ICE completed -> both connectionState "connected"
]
REFERENCE_PHASES = ["caller gather", "callee gather", "apply answer", "ICE", "DTLS"]


class Appliance:
    def __init__(self, server: RunningServer, alice: Person, bob: Person) -> None:
        self.server, self.alice, self.bob = server, alice, bob
        self.turn_body: dict[str, dict[str, Any]] = {}
        self.turn_get_ms: list[float] = []

    async def fetch_turn(self) -> None:
        for role, who in (("caller", self.alice), ("callee", self.bob)):
            start = now()
            response = await who.get("/api/turn")
            self.turn_get_ms.append((now() - start) * 1000)
            response.raise_for_status()
            self.turn_body[role] = response.json()

    async def call(self, mode: Mode) -> Sample:
        alice, bob = self.alice, self.bob
        # Credentials are fetched before the call (a client caches them for `ttl`), so GET
        # /api/turn is not in the timed window; its latency is reported on its own.
        ice_a = ice_variant(self.turn_body["caller"], mode.servers)
        ice_b = ice_variant(self.turn_body["callee"], mode.servers)
        alice.sock.drain()
        bob.sock.drain()
        call_id = await start_call(alice, bob)
        await bob.sock.next("call:incoming")
        bob_peer = TimedPeer(bob.sock, ice_b, relay=mode.relay)
        alice_peer: TimedPeer | None = None
        stop = asyncio.Event()
        pumps: list[asyncio.Task[None]] = []
        t0 = now()
        try:
            ack = await bob.sock.call("call:accepted", {"call_id": call_id})
            assert ack["ok"], ack
            await alice.sock.next("call:accepted")
            accepted = now()
            alice_peer = TimedPeer(alice.sock, ice_a, relay=mode.relay)
            pumps = [asyncio.create_task(p.pump(stop)) for p in (alice_peer, bob_peer)]
            await alice_peer.offer()
            async with asyncio.timeout(CALL_TIMEOUT):
                await alice_peer.connected.wait()
                await bob_peer.connected.wait()
            a, b = alice_peer.marks, bob_peer.marks
            ice_done = max(a["ice_completed"], b["ice_completed"])
            t1 = max(a["conn_connected"], b["conn_connected"])
            stamps = [
                accepted,
                a["pc_created"],
                a["sld_end"],
                b["got_offer"],
                b["sld_end"],
                a["got_answer"],
                ice_done,
                t1,
            ]
            phases, previous = {}, t0
            for name, stamp in zip(APPLIANCE_PHASES, stamps, strict=True):
                phases[name] = stamp - previous
                previous = stamp
            # Bob's pump sends ack by ack and may still be trickling (after t1); let him finish
            # before checking the candidates and hanging up (one sent after call:end is refused).
            async with asyncio.timeout(10):
                await bob_peer.trickled.wait()
            types = check_loopback([c["candidate"] for c in alice_peer.sent_candidates], "alice")
            types += check_loopback([c["candidate"] for c in bob_peer.sent_candidates], "bob")
            extra = {
                "caller sLD": a["sld_end"] - a["sld_start"],
                "callee sLD": b["sld_end"] - b["sld_start"],
                "caller trickle": a["sent_all"] - a["sld_end"],
                "caller answer->1st cand": a.get("got_first_candidate", t1) - a["got_answer"],
                "candidates": len(types),
                "types": sorted(set(types)),
                "ice transports": [ice_transports(alice_peer.pc), ice_transports(bob_peer.pc)],
            }
            # Hang up as tests/test_call_media.py does.
            assert (await alice.sock.call("call:end", {"call_id": call_id}))["ok"]
            await alice_peer.close()
            async with asyncio.timeout(10):
                await pumps[1]
            return Sample("appliance", mode.name, t1 - t0, phases, extra)
        except (TimeoutError, AssertionError, RuntimeError) as exc:
            with contextlib.suppress(Exception):
                await alice.sock.call("call:end", {"call_id": call_id})
            peers = [p for p in (alice_peer, bob_peer) if p is not None]
            state = describe([p.pc for p in peers], [p.marks for p in peers], t0)
            return Sample("appliance", mode.name, None, error=f"{exc!r} {state}")
        finally:
            stop.set()
            await asyncio.gather(*pumps, return_exceptions=True)
            for peer in (alice_peer, bob_peer):
                if peer is not None:
                    await peer.close()


# ---------------------------------------------------------------------------------------------
# Reference: two RTCPeerConnections wired directly
# ---------------------------------------------------------------------------------------------


async def reference_call(mode: Mode, ice_a: dict[str, Any], ice_b: dict[str, Any]) -> Sample:
    pcs = [RTCPeerConnection(rtc_configuration(ice, mode.relay)) for ice in (ice_a, ice_b)]
    marks: list[dict[str, float]] = [{}, {}]
    connected = [asyncio.Event(), asyncio.Event()]
    readers: list[asyncio.Task[None]] = []

    async def read(track: MediaStreamTrack) -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()

    for pc, mark, done in zip(pcs, marks, connected, strict=True):
        pc.addTrack(ToneTrack())
        pc.addTrack(PatternTrack())
        watch_states(pc, mark)
        pc.on("track", lambda track: readers.append(asyncio.create_task(read(track))))

        def on_conn(pc: RTCPeerConnection = pc, done: asyncio.Event = done) -> None:
            if pc.connectionState == "connected":
                done.set()

        pc.on("connectionstatechange", on_conn)
    caller, callee = pcs
    t0 = now()
    try:
        await caller.setLocalDescription(await caller.createOffer())
        offered = now()
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        answered = now()
        await caller.setRemoteDescription(callee.localDescription)
        applied = now()
        async with asyncio.timeout(CALL_TIMEOUT):
            await connected[0].wait()
            await connected[1].wait()
        ice_done = max(m["ice_completed"] for m in marks)
        t1 = max(m["conn_connected"] for m in marks)
        stamps = [offered, answered, applied, ice_done, t1]
        phases, previous = {}, t0
        for name, stamp in zip(REFERENCE_PHASES, stamps, strict=True):
            phases[name] = stamp - previous
            previous = stamp
        types = check_loopback(sdp_candidates(caller.localDescription.sdp), "ref caller")
        types += check_loopback(sdp_candidates(callee.localDescription.sdp), "ref callee")
        extra = {
            "candidates": len(types),
            "types": sorted(set(types)),
            "ice transports": [ice_transports(caller), ice_transports(callee)],
        }
        return Sample("reference", mode.name, t1 - t0, phases, extra)
    except (TimeoutError, RuntimeError) as exc:
        return Sample("reference", mode.name, None, error=f"{exc!r} {describe(pcs, marks, t0)}")
    finally:
        for pc in pcs:
            await pc.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# Gathering probe: setLocalDescription alone
# ---------------------------------------------------------------------------------------------

PROBES: list[tuple[str, bool, str, int]] = [
    # (label, relay policy, iceServers variant, samples)
    ("all, no iceServers (host)", False, "none", 5),
    ("all, stun: URL only", False, "stun", 5),
    ("all, full /api/turn answer", False, "full", 5),
    ("relay, full /api/turn answer", True, "full", 5),
    ("relay, udp TURN URL only", True, "turn-udp", 5),
    ("relay, tcp TURN URL only", True, "turn-tcp", 5),
    ("relay, tcp TURN URL listed first", True, "turn-tcp-first", 5),
    ("all, stun: at a silent port", False, "silent-stun", 1),
    ("relay, stun: at a silent port + TURN", True, "silent-stun+turn", 3),
    ("all, stun: at a silent port + TURN", False, "silent-stun+turn", 1),
    ("relay, turn: at a silent port", True, "silent-turn", 1),
]


async def probe_gathering(bodies: list[dict[str, Any]], silent_port: int) -> list[dict[str, Any]]:
    results = []
    for body, (label, relay, servers, count) in zip(bodies, PROBES, strict=True):
        ice = ice_variant(body, servers, silent_port)
        times, kinds = [], set()
        for _ in range(count):
            pc = RTCPeerConnection(rtc_configuration(ice, relay))
            pc.addTrack(ToneTrack())
            pc.addTrack(PatternTrack())
            try:
                offer = await pc.createOffer()
                start = now()
                await pc.setLocalDescription(offer)
                times.append(now() - start)
                kinds.update(check_loopback(sdp_candidates(pc.localDescription.sdp), label))
            finally:
                await pc.close()
        results.append(
            {
                "label": label,
                "samples": len(times),
                "median_ms": statistics.median(times) * 1000,
                "max_ms": max(times) * 1000,
                "candidates": sorted(kinds),
            }
        )
        print(f"  gather {label}: {results[-1]['median_ms']:.1f} ms {sorted(kinds)}", flush=True)
    return results


# ---------------------------------------------------------------------------------------------
# Driver and report
# ---------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        coturn = subprocess.run(
            ["turnserver", "--version"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    except OSError:
        coturn = "?"
    versions = ", ".join(
        f"{n} {metadata.version(n)}"
        for n in ("aiortc", "aioice", "av", "python-socketio", "uvicorn", "cryptography")
    )
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "python": platform.python_version(),
        "libraries": versions,
        "coturn": coturn or "?",
        "load average at start": loadavg(),
    }


def summarize(samples: list[Sample]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.kind, s.mode), []).append(s)
    rows = []
    for (kind, mode), group in groups.items():
        ok = [s for s in group if s.total is not None]
        totals = [s.total for s in ok if s.total is not None]
        row: dict[str, Any] = {
            "kind": kind,
            "mode": mode,
            "n": len(ok),
            "failed": len(group) - len(ok),
            "slow": sum(1 for t in totals if t > SLOW),
        }
        if totals:
            row |= {
                "p50_ms": statistics.median(totals) * 1000,
                "p95_ms": percentile(totals, 95) * 1000,
                "max_ms": max(totals) * 1000,
                "phases_p50_ms": {
                    name: statistics.median(s.phases[name] for s in ok) * 1000
                    for name in ok[0].phases
                },
            }
            extras = {k for s in ok for k, v in s.extra.items() if isinstance(v, float)}
            row["extra_p50_ms"] = {
                k: statistics.median(s.extra[k] for s in ok) * 1000 for k in sorted(extras)
            }
            row["extra_max_ms"] = {k: max(s.extra[k] for s in ok) * 1000 for k in sorted(extras)}
            counts = sorted({s.extra["candidates"] for s in ok})
            row["candidates"] = "-".join(str(c) for c in (counts[0], counts[-1]) if c is not None)
            if counts[0] == counts[-1]:
                row["candidates"] = str(counts[0])
            row["types"] = sorted({t for s in ok for t in s.extra["types"]})
            row["ice_transports"] = ok[0].extra["ice transports"]
        rows.append(row)
    return rows


def print_report(rows: list[dict[str, Any]], info: dict[str, Any]) -> None:
    print("\n## machine")
    for key, value in info["machine"].items():
        print(f"- {key}: {value}")
    print(f"- load average at end: {info['load average at end']}")
    print(
        f"- wall time: {info['wall_s']:.0f} s; GET /api/turn p50 {info['turn_get_p50_ms']:.1f} ms"
    )
    for key in ("server TCP_NODELAY", "harness server TCP_NODELAY"):
        if key in info:
            print(f"- {key}: {info[key]}")
    print(f"- GET /api/turn iceServers urls: {info['turn_answer_urls']}")
    print("\n| side | mode | n | p50 ms | p95 ms | max ms | >1 s | failed | candidates |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "p50_ms" not in r:
            print(f"| {r['kind']} | {r['mode']} | 0 | - | - | - | - | {r['failed']} | - |")
            continue
        print(
            f"| {r['kind']} | {r['mode']} | {r['n']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
            f"| {r['max_ms']:.0f} | {r['slow']} | {r['failed']} "
            f"| {r['candidates']} {'/'.join(r['types'])} |"
        )
    print("\nbreakdown, median ms per phase (critical path, sums to about p50):")
    for r in rows:
        if "phases_p50_ms" in r:
            parts = ", ".join(f"{k} {v:.1f}" for k, v in r["phases_p50_ms"].items())
            extra = ", ".join(f"{k} {v:.1f}" for k, v in r["extra_p50_ms"].items())
            print(f"- {r['kind']} {r['mode']}: {parts}" + (f" [{extra}]" if extra else ""))
            print(f"  ICE transports per PC (caller, callee): {r['ice_transports']}")


async def main_phase(args: argparse.Namespace, tmp: Path, info: dict[str, Any]) -> list[Sample]:
    """All modes, appliance and reference, against one server + coturn, in alternating rounds."""
    started = now()
    samples: list[Sample] = []
    tests.support.bind_loopback = (
        HARNESS_BIND_LOOPBACK if args.harness_socket else bind_loopback_tcp
    )
    overrides = {"turn": turn_overrides(allow_loopback_peers=True)}
    async with (
        running_server(tmp / "main", overrides) as server,
        running_turn(server.settings),
    ):
        # Each (side, mode) has its own two users: coturn counts `user_quota` (12) per TURN
        # username, a caller's RTCPeerConnection takes two allocations (one per media kind
        # until BUNDLE is agreed) and coturn frees a deleted allocation's quota only about 1 s
        # later, so one pair of users doing every relay mode back to back runs out.
        pairs: dict[tuple[str, str], Appliance] = {}
        for n, (kind, mode) in enumerate(
            (k, m) for m in MAIN_MODES + EXTRA_MODES for k in ("appliance", "reference")
        ):
            connect = kind == "appliance"
            alice = await person(server, f"alice{n}", connect=connect)
            bob = await person(server, f"bob{n}", connect=connect)
            pairs[kind, mode.name] = Appliance(server, alice, bob)
            await pairs[kind, mode.name].fetch_turn()
        info["server TCP_NODELAY"] = server_nodelay(server)
        ice_a = pairs["reference", "relay"].turn_body["caller"]
        info["turn_answer_urls"] = [e["urls"] for e in ice_a["iceServers"]]

        async def one(kind: str, mode: Mode) -> Sample:
            pair = pairs[kind, mode.name]
            RETRIGGER["on"] = mode.retrigger
            try:
                if kind == "appliance":
                    return await pair.call(mode)
                return await reference_call(
                    mode,
                    ice_variant(pair.turn_body["caller"], mode.servers),
                    ice_variant(pair.turn_body["callee"], mode.servers),
                )
            finally:
                RETRIGGER["on"] = False

        plan = [(k, m) for m in MAIN_MODES for k in ("appliance", "reference")]
        extra = [(k, m) for m in EXTRA_MODES for k in ("appliance", "reference")]
        for kind, mode in plan + extra:  # warm-up, not counted
            for _ in range(args.warmup):
                await one(kind, mode)
        # Rounds alternate the configurations (each round starts one further along), so drift
        # on the shared machine hits them all alike.
        for i in range(args.calls):
            jobs = plan + (extra if i < args.extra_calls else [])
            shift = i % len(jobs)
            for kind, mode in jobs[shift:] + jobs[:shift]:
                sample = await one(kind, mode)
                samples.append(sample)
                if sample.total is None or sample.total > SLOW:
                    print(f"  !! {kind} {mode.name} round {i}: {sample}", flush=True)
                await asyncio.sleep(0.02)
            if i % 10 == 9:
                print(f"  round {i + 1}/{args.calls} ({now() - started:.0f} s)", flush=True)
            if now() - started > args.budget:
                print(f"  budget of {args.budget} s reached after round {i + 1}", flush=True)
                break
        if not args.no_probe:
            print("gathering probe (setLocalDescription alone):", flush=True)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
                silent.bind(("127.0.0.1", 0))  # never read: a server that does not answer
                bodies = []  # one user per probe line, for coturn's per-user quota
                for n in range(len(PROBES)):
                    who = await person(server, f"probe{n}", connect=False)
                    bodies.append((await who.get("/api/turn")).json())
                info["gathering"] = await probe_gathering(bodies, silent.getsockname()[1])
        info["turn_get_p50_ms"] = statistics.median(
            t for pair in pairs.values() for t in pair.turn_get_ms
        )
    return samples


async def harness_phase(args: argparse.Namespace, tmp: Path, info: dict[str, Any]) -> list[Sample]:
    """Host calls through a server on tests.support's own listening socket (Nagle left on)."""
    tests.support.bind_loopback = HARNESS_BIND_LOOPBACK
    mode = Mode("host, tests.support socket", False, "none")
    samples = []
    async with running_server(tmp / "harness") as server:
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        info["harness server TCP_NODELAY"] = server_nodelay(server)
        appliance = Appliance(server, alice, bob)
        appliance.turn_body = {"caller": {}, "callee": {}}
        for i in range(args.warmup + args.harness_calls):
            sample = await appliance.call(mode)
            if i >= args.warmup:
                samples.append(sample)
            await asyncio.sleep(0.02)
    return samples


async def run(args: argparse.Namespace) -> dict[str, Any]:
    keep_ice_on_loopback()
    started = now()
    info: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory(prefix="bench-call-") as tmp:
        samples = await main_phase(args, Path(tmp), info)
        if args.harness_calls and not args.harness_socket:
            samples += await harness_phase(args, Path(tmp), info)
    info["wall_s"] = now() - started
    info["load average at end"] = loadavg()
    info["summary"] = summarize(samples)
    info["samples"] = [s.__dict__ for s in samples]
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per main mode and side")
    parser.add_argument("--extra-calls", type=int, default=20, help="calls per extra mode")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted calls per mode first")
    parser.add_argument("--budget", type=float, default=240, help="stop adding rounds after (s)")
    parser.add_argument("--no-probe", action="store_true", help="skip the gathering probe")
    parser.add_argument(
        "--harness-calls",
        type=int,
        default=20,
        help="host calls through a server on tests.support's socket (TCP_NODELAY off)",
    )
    parser.add_argument(
        "--harness-socket",
        action="store_true",
        help="serve the main phase on tests.support's socket too (as the tests do)",
    )
    parser.add_argument("--json", type=Path, help="write samples and summary here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    info = asyncio.run(run(args))
    print_report(info["summary"], info)
    if "gathering" in info:
        print("\ngathering probe, setLocalDescription of one PC (audio + video):")
        print("| iceServers | n | median ms | max ms | candidates |\n|---|---|---|---|---|")
        for g in info["gathering"]:
            print(
                f"| {g['label']} | {g['samples']} | {g['median_ms']:.1f} | {g['max_ms']:.1f} "
                f"| {'/'.join(g['candidates']) or 'none'} |"
            )
    if args.json:
        args.json.write_text(json.dumps(info, indent=1, default=str))


if __name__ == "__main__":
    main()
