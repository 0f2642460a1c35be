"""Chat throughput: acked `chat:message`s per second and ack latency (see docs/benchmarks.md).

The real server runs as a subprocess on 127.0.0.1 (a free port), once with SQLite
`synchronous=FULL` and once with `NORMAL` (through APPLIANCE_DATABASE__SYNCHRONOUS), rate
limits lifted. By default it is started through this script's `_serve` mode, which runs
`appliance.cli.main` unchanged (`python -m appliance --data-dir D --log-level warning web ...`)
and only wraps `MessageWriter._commit` with a counter, so the group-commit batch size can be
read; `--plain` starts `python -m appliance` itself and reports no batch sizes.

Load: 100 users, one socket each, in two client processes (`_client` mode) that speak the
engine.io v4 / socket.io v5 wire protocol by hand over aiohttp websockets, on uvloop: about
30-65 us of client CPU per acked message against about 140 us for python-socketio's
AsyncClient, which matters when client and server share 2 cores. A "sender" is one socket
with one `chat:message` in flight: it sends, waits for the ack, sends the next. Senders 0..N-1
send; the other sockets stay connected and receive.

Rooms: user 2k and 2k+1 share a direct room (every message is broadcast to exactly one other
socket, the partner's); users 10g..10g+9 share a group room (broadcast to 9 other sockets).

Phases per server run: direct rooms with 1, 10 and 100 senders, then group rooms with 100
senders; each a warm-up, then a fixed window in which acks are counted. Latency is send -> ack
of the messages sent inside the window. Server CPU (utime+stime of all its threads and of its
child, the message writer process, from /proc) and the writer's batches are read at both ends of
the window; RSS is the server's plus the writer's, peak RSS is the sum of their VmHWM.

Reference: raw `sqlite3` `executemany` of the same rows into a copy of the same database
(same schema, foreign keys on, WAL) in the same temp dir, per sync mode: one commit per row,
per 100 rows, per 256 rows (the writer's default batch) and one transaction for all; and the
writer's own SQL (`appliance.storage.messages.store_rows`, what the writer process runs: the
largest id, one multi-row INSERT ... ON CONFLICT DO NOTHING) in batches of 100.

`--prefill N` stores N messages before the server starts (the table's size must not matter);
`--what-if no-gc-freeze` makes the server's `gc.freeze()` after start-up a no-op (the heap as it
was before that change): an experiment, not the product.

Run from the repository root (about 2.5 minutes on 2 cores):

  .venv/bin/python bench/chat_throughput.py
  .venv/bin/python bench/chat_throughput.py --profile /tmp/chat-profile --json out.json
  .venv/bin/python bench/chat_throughput.py --duration 3 --warmup 1 --senders 1 10

`--profile PREFIX` (needs `py-spy` in the venv) adds one more 100-sender FULL phase under
`py-spy record --gil` (the event-loop thread's Python work), after the measured ones, writes
PREFIX.txt (collapsed stacks) and prints the samples by area of the server and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "bench password 1234"
USERS = 100
GROUP_SIZE = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
INSERT = (
    "INSERT INTO messages (room_id, sender_id, client_msg_id, text, created_at)"
    " VALUES (?, ?, ?, ?, ?)"
)
WHAT_IF_ENV = "CHAT_BENCH_WHAT_IF"


def message_text(index: int, seq: int) -> str:
    return f"bench message {seq:07d} from sender {index:03d}"


# ---------------------------------------------------------------------------------------------
# Server (subprocess): the real CLI, plus a batch counter read over stdin/stdout
# ---------------------------------------------------------------------------------------------


def serve(argv: list[str]) -> int:
    from appliance.cli import main
    from appliance.storage.message_writer import MessageWriter

    if os.environ.get(WHAT_IF_ENV) == "no-gc-freeze":
        # What-if, not the product: the web service's gc.freeze() after start-up does nothing.
        import gc

        gc.freeze = lambda: None

    counts = {"batches": 0, "messages": 0, "max": 0}
    original = MessageWriter._commit

    async def counted(self: MessageWriter, batch: list[Any]) -> None:
        counts["batches"] += 1
        counts["messages"] += len(batch)
        counts["max"] = max(counts["max"], len(batch))
        await original(self, batch)

    MessageWriter._commit = counted  # type: ignore[method-assign]

    def answer() -> None:
        # Any line on stdin asks for the counters; the reply goes to stdout.
        for _ in sys.stdin:
            sys.stdout.write(f"STATS {json.dumps(counts)}\n")
            sys.stdout.flush()

    threading.Thread(target=answer, name="bench-stats", daemon=True).start()
    return main(argv)


# ---------------------------------------------------------------------------------------------
# Client (subprocess): raw engine.io/socket.io over aiohttp websockets
# ---------------------------------------------------------------------------------------------


@dataclass
class Sock:
    index: int
    ws: Any
    direct_room: int
    group_room: int
    next_id: int = 0
    waiter: asyncio.Future[str] | None = None
    events: int = 0  # socket.io EVENT packets received (broadcasts, presence)
    reader: asyncio.Task[None] | None = None


async def read_frames(sock: Sock) -> None:
    import aiohttp

    ws = sock.ws
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data: str = msg.data
        if data.startswith("43"):  # socket.io ACK
            waiter = sock.waiter
            sock.waiter = None
            if waiter is not None and not waiter.done():
                waiter.set_result(data)
        elif data.startswith("42"):  # socket.io EVENT
            sock.events += 1
        elif data == "2":  # engine.io ping
            await ws.send_str("3")
    waiter = sock.waiter
    if waiter is not None and not waiter.done():
        waiter.set_exception(ConnectionError("socket closed"))


async def open_socket(session: Any, url: str, spec: dict[str, Any]) -> Sock:
    ws = await session.ws_connect(
        url + "/socket.io/?EIO=4&transport=websocket", max_msg_size=0, compress=0
    )
    opened = await ws.receive_str(timeout=10)
    if not opened.startswith("0"):
        raise RuntimeError(f"no engine.io OPEN: {opened[:200]!r}")
    await ws.send_str("40" + json.dumps({"token": spec["token"]}))
    while True:
        packet = await ws.receive_str(timeout=10)
        if packet == "2":
            await ws.send_str("3")
        elif packet.startswith("40"):
            break
        elif packet.startswith("44"):
            raise RuntimeError(f"connect refused: {packet[:200]}")
    sock = Sock(spec["index"], ws, spec["direct_room"], spec["group_room"])
    sock.reader = asyncio.create_task(read_frames(sock))
    return sock


@dataclass
class PhaseTally:
    acked_in_window: int = 0
    acked_total: int = 0
    errors: int = 0
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    events_in_window: int = 0


async def send_loop(
    sock: Sock, room: int, prefix: str, start: float, window: tuple[float, float], t: PhaseTally
) -> None:
    loop = asyncio.get_running_loop()
    window_start, window_end = window
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    seq = 0
    while (sent_at := time.monotonic()) < window_end:
        sock.next_id += 1
        ack_id = sock.next_id
        body = json.dumps(
            {
                "room_id": room,
                "text": message_text(sock.index, seq),
                "client_msg_id": f"{prefix}s{sock.index}n{seq}",
            },
            separators=(",", ":"),
        )
        waiter: asyncio.Future[str] = loop.create_future()
        sock.waiter = waiter
        await sock.ws.send_str(f'42{ack_id}["chat:message",{body}]')
        reply = await waiter
        acked_at = time.monotonic()
        seq += 1
        if not reply.startswith(f'43{ack_id}[{{"ok":true,'):
            t.errors += 1
            t.first_error = t.first_error or reply[:300]
            continue
        t.acked_total += 1
        if window_start <= acked_at <= window_end:
            t.acked_in_window += 1
        if sent_at >= window_start:
            t.latencies_ms.append(round((acked_at - sent_at) * 1000, 4))


async def count_events(socks: list[Sock], window: tuple[float, float], t: PhaseTally) -> None:
    await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
    before = sum(s.events for s in socks)
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
    t.events_in_window = sum(s.events for s in socks) - before


async def client_main() -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    config = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        socks: dict[int, Sock] = {}
        for spec in config["sockets"]:  # sequential: steady state is measured, not a storm
            socks[spec["index"]] = await open_socket(session, config["url"], spec)
        print(json.dumps({"ready": len(socks)}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            window = (cmd["window"][0], cmd["window"][1])
            tally = PhaseTally()
            mine = [socks[i] for i in cmd["senders"] if i in socks]
            room_key = "direct_room" if cmd["rooms"] == "direct" else "group_room"
            jobs = [
                send_loop(s, getattr(s, room_key), cmd["prefix"], cmd["start"], window, tally)
                for s in mine
            ]
            jobs.append(count_events(list(socks.values()), window, tally))
            limit = window[1] - time.monotonic() + 60
            try:
                await asyncio.wait_for(asyncio.gather(*jobs), limit)
            except TimeoutError:
                tally.errors += 1
                tally.first_error = tally.first_error or "phase timed out (acks missing)"
            print(json.dumps(asdict(tally)), flush=True)
        for sock in socks.values():
            await sock.ws.close()
            if sock.reader is not None:
                await sock.reader


def run_client() -> int:
    try:
        import uvloop

        uvloop.run(client_main())
    except ImportError:
        asyncio.run(client_main())
    return 0


# ---------------------------------------------------------------------------------------------
# Set-up: a template data dir with users, rooms and access tokens, copied for each run
# ---------------------------------------------------------------------------------------------


class NullNotifier:
    async def to_everyone(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def to_user(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def to_socket(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def to_room(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def join_room(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def leave_room(self, *args: Any, **kwargs: Any) -> None:
        return None


async def prepare(data_dir: Path, users: int) -> list[dict[str, Any]]:
    """Users bench000.., one argon2 hash shared by all (the same password); a real login each
    (AuthService.login: argon2 verify, refresh token stored), direct and group rooms."""
    from appliance.bootstrap import ensure_config
    from appliance.container import Container

    settings, _ = ensure_config(data_dir)
    container = Container(settings, NullNotifier())
    await container.db.start()
    try:
        password_hash = await container.passwords.hash(PASSWORD)
        ids = []
        for i in range(users):
            user = await container.users.create(
                f"bench{i:03d}", password_hash, is_admin=False, now=time.time()
            )
            ids.append(user.id)
        pairs = await asyncio.gather(
            *(container.auth.login(f"bench{i:03d}", PASSWORD, "127.0.0.1") for i in range(users))
        )
        direct = {}
        for i in range(0, users - 1, 2):
            view = await container.chat.open_direct(ids[i], ids[i + 1])
            direct[i] = direct[i + 1] = view.room.id
        group = {}
        for g in range(0, users, GROUP_SIZE):
            members = ids[g : g + GROUP_SIZE]
            view = await container.chat.create_group(ids[g], f"bench group {g}", members[1:])
            for i in range(g, g + len(members)):
                group[i] = view.room.id
    finally:
        await container.db.stop()
    return [
        {
            "index": i,
            "user_id": ids[i],
            "token": pairs[i].access_token,
            "direct_room": direct.get(i, 0),
            "group_room": group[i],
        }
        for i in range(users)
    ]


# ---------------------------------------------------------------------------------------------
# Raw sqlite3 reference
# ---------------------------------------------------------------------------------------------


@dataclass
class RefResult:
    synchronous: str
    method: str  # "executemany" or "writer SQL"
    batch: int  # rows per transaction (0: all in one)
    rows: int
    seconds: float
    rows_per_s: float


def reference_rows(
    specs: list[dict[str, Any]], count: int, prefix: str = "ref"
) -> list[tuple[Any, ...]]:
    """The rows 100 direct-room senders would write, round robin, as the server stores them."""
    rows = []
    now = time.time()
    for n in range(count):
        spec = specs[n % len(specs)]
        seq = n // len(specs)
        rows.append(
            (
                spec["direct_room"],
                spec["user_id"],
                f"{prefix}s{spec['index']}n{seq}",
                message_text(spec["index"], seq),
                now + n * 1e-4,
            )
        )
    return rows


def run_reference(
    template_db: Path,
    work: Path,
    synchronous: str,
    method: str,
    batch: int,
    rows: list[tuple[Any, ...]],
    budget: float,
) -> RefResult:
    from appliance.storage.messages import store_rows

    path = work / f"ref-{synchronous}-{re.sub(r'[^a-z0-9]+', '_', method)}-{batch}.db"
    shutil.copyfile(template_db, path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        size = batch or len(rows)
        done = 0
        started = time.perf_counter()
        while done < len(rows) and time.perf_counter() - started < budget:
            chunk = rows[done : done + size]
            conn.execute("BEGIN IMMEDIATE")
            if method == "writer SQL":
                store_rows(conn, [(*r, None) for r in chunk])
            else:
                conn.executemany(INSERT, chunk)
            conn.execute("COMMIT")
            done += len(chunk)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    path.unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return RefResult(synchronous, method, batch, done, elapsed, done / elapsed)


# ---------------------------------------------------------------------------------------------
# Orchestration (this process)
# ---------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    synchronous: str
    rooms: str
    fanout: int  # sockets that receive each message's broadcast
    senders: int
    rows_before: int = 0  # messages in the table when the phase started
    acked_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    server_cores: float = 0.0  # server CPU seconds per wall second in the window
    loop_cores: float = 0.0  # of which the main thread (event loop)
    writer_cores: float = 0.0  # of which the message writer process
    server_us_per_msg: float = 0.0
    avg_batch: float | None = None
    max_batch: int | None = None
    client_cores: float = 0.0  # both client processes together
    other_cores: float = 0.0  # everything else busy on the machine in the window (noise)
    broadcasts_per_s: float = 0.0  # socket.io events received by all clients in the window
    acked_total: int = 0  # warm-up and drain included
    errors: int = 0
    first_error: str = ""


@dataclass
class ServerRun:
    synchronous: str
    round: int
    phases: list[PhaseResult] = field(default_factory=list)
    rss_connected_mb: float = 0.0
    rss_end_mb: float = 0.0  # after the last phase
    rss_peak_mb: float = 0.0
    server_cpu_s: float = 0.0
    acked_total: int = 0
    rows_stored: int = 0
    notes: list[str] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the server and its message writer process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += process_tree(int(child))
    return found


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in process_tree(pid))


def tree_status_mb(pid: int, key: str) -> float:
    return sum(proc_status_mb(p, key) for p in process_tree(pid))


def main_thread_cpu_seconds(pid: int) -> float:
    """utime+stime of the process's main thread alone (the event loop's)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not iowait) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def proc_status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


class Server:
    def __init__(
        self, data_dir: Path, synchronous: str, log_path: Path, plain: bool, what_if: str | None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "APPLIANCE_RATE_LIMITS__CHAT_RATE": "1000000",
            "APPLIANCE_RATE_LIMITS__CHAT_BURST": "1000000",
            "APPLIANCE_DATABASE__SYNCHRONOUS": synchronous,
        }
        if what_if:
            env[WHAT_IF_ENV] = what_if
        args = ["--data-dir", str(data_dir), "--log-level", "warning", "web"]
        args += ["--host", "127.0.0.1", "--port", str(self.port)]
        head = (
            [sys.executable, "-m", "appliance"] if plain else [sys.executable, __file__, "_serve"]
        )
        self.plain = plain
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                head + args,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL if plain else subprocess.PIPE,
                stdout=subprocess.DEVNULL if plain else subprocess.PIPE,
                stderr=log,
                text=True,
            )
        # uvicorn listens once the app's start-up (database, writer) is done. (/healthz is not
        # used: it waits for a STUN probe of the TURN service.)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("server did not listen within 30 s")
            time.sleep(0.05)

    def stats(self) -> dict[str, int] | None:
        if self.plain:
            return None
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.startswith("STATS "):
                return dict(json.loads(line[6:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client:
    def __init__(self, url: str, specs: list[dict[str, Any]], log: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "_client"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.send({"url": url, "sockets": specs})

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"client process ended (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.send({"cmd": "quit"})
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_phase(
    server: Server,
    clients: list[Client],
    sync: str,
    rooms: str,
    senders: int,
    args: argparse.Namespace,
    prefix: str,
) -> PhaseResult:
    fanout = 1 if rooms == "direct" else GROUP_SIZE - 1
    result = PhaseResult(sync, rooms, fanout, senders)
    start = time.monotonic() + 0.3
    window = (start + args.warmup, start + args.warmup + args.duration)
    for client in clients:
        client.send(
            {
                "cmd": "run",
                "senders": list(range(senders)),
                "rooms": rooms,
                "prefix": prefix,
                "start": start,
                "window": window,
            }
        )
    pids = [server.proc.pid] + [c.proc.pid for c in clients]
    sleep_until(window[0])
    cpu_before = [tree_cpu_seconds(p) for p in pids]
    own_before = cpu_seconds(server.proc.pid)
    loop_before = main_thread_cpu_seconds(server.proc.pid)
    busy_before = machine_busy_seconds()
    stats_before = server.stats()
    sleep_until(window[1])
    cpu_after = [tree_cpu_seconds(p) for p in pids]
    own_after = cpu_seconds(server.proc.pid)
    loop_after = main_thread_cpu_seconds(server.proc.pid)
    busy_after = machine_busy_seconds()
    stats_after = server.stats()
    tallies = [c.receive() for c in clients]

    acked = sum(t["acked_in_window"] for t in tallies)
    latencies = sorted(x for t in tallies for x in t["latencies_ms"])
    result.acked_per_s = acked / args.duration
    result.p50_ms = percentile(latencies, 0.50)
    result.p99_ms = percentile(latencies, 0.99)
    result.max_ms = latencies[-1] if latencies else 0.0
    server_cpu = cpu_after[0] - cpu_before[0]
    result.server_cores = server_cpu / args.duration
    result.loop_cores = (loop_after - loop_before) / args.duration
    result.writer_cores = (server_cpu - (own_after - own_before)) / args.duration
    result.server_us_per_msg = server_cpu / acked * 1e6 if acked else 0.0
    ours = sum(cpu_after) - sum(cpu_before)
    result.client_cores = (ours - server_cpu) / args.duration
    result.other_cores = max(0.0, (busy_after - busy_before - ours) / args.duration)
    result.broadcasts_per_s = sum(t["events_in_window"] for t in tallies) / args.duration
    if stats_before and stats_after:
        batches = stats_after["batches"] - stats_before["batches"]
        messages = stats_after["messages"] - stats_before["messages"]
        result.avg_batch = messages / batches if batches else None
        result.max_batch = stats_after["max"]
    result.errors = sum(t["errors"] for t in tallies)
    result.first_error = next((t["first_error"] for t in tallies if t["first_error"]), "")
    result.acked_total = sum(t["acked_total"] for t in tallies)
    return result


def profile_phase(
    server: Server,
    clients: list[Client],
    args: argparse.Namespace,
    prefix: Path,
    profiled: list[PhaseResult],
) -> str:
    """One more 100-sender FULL phase under py-spy; returns a summary of the samples."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        return "py-spy is not installed in the venv: no profile"
    raw = prefix.with_suffix(".txt")
    senders = max(args.senders)
    record = subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--pid",
            str(server.proc.pid),
            "--duration",
            str(int(args.warmup + args.duration)),
            "--rate",
            str(args.profile_rate),
            "--format",
            "raw",
            "--threads",
            "--output",
            str(raw),
            *(args.py_spy_arg or ["--gil", "--nonblocking"]),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    phase = run_phase(server, clients, "FULL", "direct", senders, args, "prof")
    profiled.append(phase)
    _, err = record.communicate(timeout=60)
    if not raw.exists():
        return f"py-spy failed: {err.strip()[-500:]}"
    return (
        f"profiled phase (under py-spy, {args.profile_rate} Hz): {phase.acked_per_s:.0f} acked/s,"
        f" p99 {phase.p99_ms:.1f} ms\n" + summarise_profile(raw)
    )


_LINE_NO = re.compile(r":\d+\)$")

# Areas of the server's work, by the leaf-most frame on a stack that matches (first match wins
# within a frame). Names are substrings of py-spy's "function (file)" frames.
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("aiosqlite thread (SQL in C, fsync, thread hand-off)", ("_connection_worker_thread",)),
    (
        "websocket send: uvicorn websockets-sansio framing, transport.write",
        ("WebSocketsSansIOProtocol.send (", "Protocol.send_", "Frame.serialize"),
    ),
    (
        "websocket receive: frame parsing, ASGI receive",
        ("data_received", "handle_events", "WebSocketsSansIOProtocol.receive", "websockets/"),
    ),
    ("socket.io packet encode (data_is_binary, json.dumps)", ("Packet.__init__", "Packet.encode")),
    (
        "socket.io packet decode (json.loads)",
        ("Packet.decode", "decode_packet", "engineio/json.py"),
    ),
    ("pydantic validation", ("model_validate",)),
    ("rate limiter", ("MemoryRateLimiter",)),
    ("ChatService.clean_text", ("ChatService.clean_text",)),
    ("MessageRepository / Database.transaction (loop side)", ("MessageRepository", "Database.")),
    ("aiosqlite (loop side: futures, callbacks)", ("aiosqlite/",)),
    ("MessageWriter (queue, futures)", ("MessageWriter",)),
    (
        "fan-out emit (AsyncManager.emit, rooms)",
        ("AsyncManager.emit", "get_participants", "SocketNotifier", "AsyncServer.emit"),
    ),
    ("asyncio tasks and timeouts (create_task, wait_for)", ("asyncio/tasks.py",)),
    ("socket.io event dispatch and ack", ("socketio/async_server.py",)),
    (
        "engine.io per-socket loops (receive, send queue, writer task)",
        ("engineio/", "Queue."),
    ),
    ("gateway and ack wrappers", ("RealtimeGateway", "guarded", "register_chat_events")),
    ("rest of ChatService.send", ("ChatService",)),
    ("event loop itself (uvloop, in C)", ("Runner.run",)),
]


def area_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, patterns in AREAS:
            if any(p in frame for p in patterns):
                return name
    return "other"


def summarise_profile(raw: Path, top: int = 20) -> str:
    """Sample shares by thread, by area of the server and by function (self time)."""
    own: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread, frames = frames[0], [_LINE_NO.sub(")", f) for f in frames[1:]]
        total += count
        threads[thread] += count
        if "bench-stats" in thread:
            areas["the bench's stats thread"] += count
        else:
            areas[area_of(frames)] += count
        if frames:
            own[frames[-1]] += count
    if not total:
        return "no samples"

    def share(counter: Counter[str], n: int) -> list[str]:
        return [f"  {100 * c / total:5.1f}%  {name}" for name, c in counter.most_common(n)]

    lines = [f"{total} samples", "by thread:", *share(threads, 5)]
    lines += ["by area (leaf-most matching frame):", *share(areas, len(AREAS) + 2)]
    lines += ["by function (self):", *share(own, top)]
    return "\n".join(lines)


def run_server(
    sync: str,
    template: Path,
    work: Path,
    specs: list[dict[str, Any]],
    args: argparse.Namespace,
    round_no: int,
) -> tuple[ServerRun, str]:
    run = ServerRun(sync, round_no)
    data_dir = work / f"data-{sync}-{round_no}"
    shutil.copytree(template, data_dir)
    log_path = work / f"server-{sync}-{round_no}.log"
    server = Server(data_dir, sync, log_path, args.plain, args.what_if)
    clients: list[Client] = []
    profile = ""
    client_log = (work / f"clients-{sync}-{round_no}.log").open("w")
    try:
        clients = [Client(server.url, specs[k::2], client_log) for k in range(2)]
        for client in clients:
            client.receive()  # {"ready": n}
        run.rss_connected_mb = tree_status_mb(server.proc.pid, "VmRSS")
        cpu_start = tree_cpu_seconds(server.proc.pid)
        phases = [("direct", n) for n in args.senders]
        if not args.no_group:
            phases.append(("group", max(args.senders)))
        rows = args.prefill
        for rooms, senders in phases:
            prefix = f"r{round_no}{rooms[0]}{senders}"
            result = run_phase(server, clients, sync, rooms, senders, args, prefix)
            result.rows_before = rows
            rows += result.acked_total
            run.phases.append(result)
            print(
                f"  round {round_no} {sync:6} {rooms:6} senders={senders:3}:"
                f" {result.acked_per_s:7.0f} acked/s"
                f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                f"  server {result.server_cores:.2f} cores (loop {result.loop_cores:.2f},"
                f" writer {result.writer_cores:.2f})"
                f"  batch {result.avg_batch or 0:.1f}  other {result.other_cores:.2f} cores"
                f"  errors {result.errors}",
                flush=True,
            )
        run.server_cpu_s = tree_cpu_seconds(server.proc.pid) - cpu_start
        extra: list[PhaseResult] = []
        if args.profile is not None and sync == "FULL" and round_no == 0:
            profile = profile_phase(server, clients, args, args.profile, extra)
        run.acked_total = sum(p.acked_total for p in run.phases + extra)
        run.rss_end_mb = tree_status_mb(server.proc.pid, "VmRSS")
        run.rss_peak_mb = tree_status_mb(server.proc.pid, "VmHWM")
    finally:
        for client in clients:
            client.stop()
        server.stop()
        client_log.close()
    with sqlite3.connect(data_dir / "appliance.db") as db:
        run.rows_stored = int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    for line in server.log_path.read_text().splitlines():
        if line.strip() and "warnings.warn" not in line:
            run.notes.append(line.strip()[:240])
    shutil.rmtree(data_dir, ignore_errors=True)
    return run, profile


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def disk_of(path: Path) -> str:
    dev = os.stat(path).st_dev
    sys_path = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sys_path.exists():
        return f"device {os.major(dev)}:{os.minor(dev)} (not a block device in /sys)"
    real = sys_path.resolve()
    disk = real if (real / "queue").exists() else real.parent
    rotational = (disk / "queue" / "rotational").read_text().strip()
    vendor_path = disk / "device" / "vendor"
    vendor = vendor_path.read_text().strip() if vendor_path.exists() else "?"
    kind = "virtio-blk" if vendor == "0x1af4" else f"vendor {vendor}"
    return f"{disk.name} ({kind}, queue/rotational={rotational})"


def machine(work: Path) -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("python-socketio", "python-engineio", "uvicorn", "aiosqlite", "aiohttp")
    )
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "appliance"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        commit = head + (" (appliance/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    return {
        "commit": commit,
        "cpus": f"{os.cpu_count()} ({model})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "disk": disk_of(work),
        "filesystem temp dir": str(work),
        "load average at start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def report(runs: list[ServerRun], refs: list[RefResult]) -> str:
    """One row per configuration: medians over the rounds (min-max of the throughput)."""
    groups: dict[tuple[str, str, int], list[PhaseResult]] = {}
    for run in runs:
        for p in run.phases:
            groups.setdefault((p.synchronous, p.rooms, p.senders), []).append(p)
    rows = []
    for (sync, rooms, senders), ps in groups.items():
        rates = [p.acked_per_s for p in ps]
        spread = f" ({min(rates):,.0f}-{max(rates):,.0f})" if len(ps) > 1 else ""
        batches = [p.avg_batch for p in ps if p.avg_batch is not None]
        rows.append(
            [
                sync,
                f"{rooms} ({ps[0].fanout})",
                str(senders),
                f"{median([p.rows_before for p in ps]):,.0f}",
                f"{median(rates):,.0f}{spread}",
                f"{median([p.p50_ms for p in ps]):.1f}",
                f"{median([p.p99_ms for p in ps]):.1f}",
                f"{median([p.server_cores for p in ps]):.2f}"
                f" ({median([p.loop_cores for p in ps]):.2f},"
                f" {median([p.writer_cores for p in ps]):.2f})",
                f"{median([p.server_us_per_msg for p in ps]):.0f}",
                f"{median(batches):.1f}" if batches else "n/a",
                f"{median([p.client_cores for p in ps]):.2f}",
                f"{median([p.other_cores for p in ps]):.2f}",
                str(sum(p.errors for p in ps)),
            ]
        )
    rounds = max((r.round for r in runs), default=0) + 1
    out = [
        f"Medians over {rounds} round(s); acked msg/s with (min-max).",
        "",
        markdown_table(
            [
                "sync",
                "rooms (fan-out)",
                "senders",
                "rows before",
                "acked msg/s",
                "p50 ms",
                "p99 ms",
                "server cores (loop thread, writer process)",
                "server CPU us/msg",
                "avg batch",
                "client cores",
                "other cores",
                "errors",
            ],
            rows,
        ),
        "",
    ]
    by_sync: dict[str, list[ServerRun]] = {}
    for run in runs:
        by_sync.setdefault(run.synchronous, []).append(run)
    out += [
        markdown_table(
            [
                "sync",
                "server RSS connected MiB",
                "RSS after the phases MiB",
                "peak RSS MiB",
                "acked (all phases)",
                "stored",
            ],
            [
                [
                    sync,
                    f"{median([r.rss_connected_mb for r in rs]):.0f}",
                    f"{median([r.rss_end_mb for r in rs]):.0f}",
                    f"{max(r.rss_peak_mb for r in rs):.0f}",
                    str(sum(r.acked_total for r in rs)),
                    str(sum(r.rows_stored for r in rs)),
                ]
                for sync, rs in by_sync.items()
            ],
        ),
        "",
    ]
    best = {
        (sync, senders): median([p.acked_per_s for p in ps])
        for (sync, rooms, senders), ps in groups.items()
        if rooms == "direct"
    }
    top = max((n for _, n in best), default=0)
    out.append(
        markdown_table(
            ["sync", "raw sqlite3", "rows per commit", "rows/s", f"server ({top} senders) / raw"],
            [
                [
                    ref.synchronous,
                    ref.method,
                    str(ref.batch) if ref.batch else "all (one transaction)",
                    f"{ref.rows_per_s:,.0f}",
                    f"{best.get((ref.synchronous, top), 0) / ref.rows_per_s:.3f}",
                ]
                for ref in refs
            ],
        )
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        return serve(argv[1:])
    if argv[:1] == ["_client"]:
        return run_client()

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="server runs per sync mode")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds a phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each window")
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--sync", nargs="+", default=["FULL", "NORMAL"], choices=["FULL", "NORMAL"])
    parser.add_argument("--no-group", action="store_true", help="skip the group-room phase")
    parser.add_argument("--plain", action="store_true", help="python -m appliance, no batches")
    parser.add_argument(
        "--what-if",
        choices=["no-gc-freeze"],
        help="experiment, not the product: patch the server (no-gc-freeze: the web service's "
        "gc.freeze() after start-up does nothing)",
    )
    parser.add_argument("--prefill", type=int, default=0, help="messages stored beforehand")
    parser.add_argument("--ref-rows", type=int, default=100_000)
    parser.add_argument("--ref-budget", type=float, default=2.0, help="seconds per reference")
    parser.add_argument("--profile", type=Path, help="py-spy output prefix (PREFIX.txt)")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy samples/s")
    parser.add_argument(
        "--py-spy-arg",
        action="append",
        default=[],
        help="py-spy record option instead of the default --gil --nonblocking (repeatable;"
        " --py-spy-arg=--threads samples every thread, not only the one holding the GIL)",
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--tmp-dir", type=Path, help="where the databases go (default: $TMPDIR)")
    args = parser.parse_args(argv)
    if max(args.senders) > USERS:
        parser.error(f"at most {USERS} senders")
    if args.what_if and args.plain:
        parser.error("--what-if patches the server through _serve; it cannot run with --plain")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chat-bench-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        info = machine(work)
        info["server"] = (
            "python -m appliance (--plain)"
            if args.plain
            else "appliance.cli.main through _serve (batch counter)"
            + (f", WHAT-IF {args.what_if} (not the product)" if args.what_if else "")
        )
        for key, value in info.items():
            print(f"{key}: {value}")
        template = work / "template"
        print("setting up 100 users (one login each), rooms, tokens ...", flush=True)
        specs = asyncio.run(prepare(template, USERS))
        if args.prefill:
            print(f"prefilling {args.prefill} messages ...", flush=True)
            with contextlib.closing(sqlite3.connect(template / "appliance.db")) as db, db:
                db.executemany(INSERT, reference_rows(specs, args.prefill, "pre"))

        print("raw sqlite3 reference ...", flush=True)
        rows = reference_rows(specs, args.ref_rows)
        refs = []
        plan = [("executemany", 1), ("executemany", 100), ("executemany", 256)]
        plan += [("executemany", 0), ("writer SQL", 100)]
        for sync in args.sync:
            for method, batch in plan:
                ref = run_reference(
                    template / "appliance.db", work, sync, method, batch, rows, args.ref_budget
                )
                refs.append(ref)
                print(
                    f"  {sync:6} {method} batch={batch or 'all'}: {ref.rows_per_s:,.0f} rows/s",
                    flush=True,
                )

        runs = []
        profile = ""
        for round_no in range(args.rounds):
            # Alternate the order, so drift on a shared machine hits both modes alike.
            order = args.sync if round_no % 2 == 0 else args.sync[::-1]
            for sync in order:
                print(f"round {round_no}: server, synchronous={sync} ...", flush=True)
                run, summary = run_server(sync, template, work, specs, args, round_no)
                runs.append(run)
                profile = profile or summary
        elapsed = time.monotonic() - started

    print()
    print(report(runs, refs))
    for run in runs:
        if run.rows_stored != run.acked_total + args.prefill:
            print(
                f"NOTE {run.synchronous} round {run.round}: {run.acked_total} acked"
                f" + {args.prefill} prefilled,"
                f" {run.rows_stored} stored"
            )
        for note in run.notes[:3]:
            print(f"server log ({run.synchronous} round {run.round}): {note}")
        for phase in run.phases:
            if phase.first_error:
                print(f"first error ({phase.synchronous} {phase.senders}): {phase.first_error}")
    for run in runs:
        print(
            f"round {run.round} {run.synchronous}: server CPU {run.server_cpu_s:.1f} s over the"
            f" phases (warm-ups included), peak RSS {run.rss_peak_mb:.0f} MiB"
        )
    if profile:
        print()
        print(profile)
    print(f"\ntotal {elapsed:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "runs": [asdict(r) for r in runs],
                    "reference": [asdict(r) for r in refs],
                    "profile": profile,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
