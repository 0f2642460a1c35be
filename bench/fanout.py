"""Chat fan-out: thousands of sockets in rooms of 6, one message a second each (issue #13).

Three servers side by side, each started afresh for every client count, on 127.0.0.1:
  - `full`: the appliance's real `web` service (`python -m appliance ... web`, its own process and
    its message-writer child) with `database.synchronous = FULL`, the default durability;
  - `normal`: the same with `synchronous = NORMAL` (APPLIANCE_DATABASE__SYNCHRONOUS);
  - `node`: bench/peers/fanout_server.mjs, a socket.io 4 server that joins each socket to the room
    named in its handshake and relays `chat:message` to it with an ack; nothing stored.
The appliance's data dir is a copy of one template (temp dir): users fan00000.. and group rooms
of 6 made through the appliance's services, one HTTP login per user (POST /api/auth/login on a
server run on the template, before any measurement), so the access tokens are real; the config
has `web.https_port = 0` (plain HTTP on loopback only), `auth.access_ttl` one day and set-up done.
Rate limits are the defaults (1 msg/s is well inside them).

Load: node processes (bench/peers/fanout_client.mjs) with the official socket.io-client, the
clients dealt round robin over them, websocket transport, permessage-deflate offered as the
client does by default (`--no-deflate`: not offered). Each client connects (at most
`--connect-concurrency` handshakes in flight over all generators), then sends the appliance's
real event, `chat:message {room_id, text, client_msg_id}` with an ack, once a second, the clients
spread evenly over the second. The text carries the send time on CLOCK_MONOTONIC, which every
process on the machine shares; every other member's socket records receipt time minus send time.

Measured per run, over the `--seconds` window that follows `--warmup`:
  - latency p50/p95/p99 at the receivers of the messages sent inside the window;
  - dropped: deliveries expected (each window message times its room's other connected sockets)
    minus received, after a drain of up to `--drain` seconds; failed: connections refused or timed
    out (`--connect-timeout`); connect s: from the first handshake until every client settled;
  - server CPU (% of one core) and RSS: the server process and its children (the writer), from
    /proc; RSS at the end of the window; generators' CPU, all together and the busiest one (a
    generator near 100 % would be the bottleneck), and the rest of the machine's load (noise);
  - acks of window messages (p50/p95/p99), ack errors, and for the appliance the rows stored.
A server is not run at larger client counts once its p95 passed `--give-up-ms` or more than 5 %
of its clients failed to connect.

Run from the repository root (`npm ci --prefix bench/peers`, or `scripts/setup --dev`, first):

  .venv/bin/python bench/fanout.py                          # 300 .. 4,500 clients, 20 s each
  .venv/bin/python bench/fanout.py --clients 300,600 --seconds 10 --json out.json
  .venv/bin/python bench/fanout.py --quick                  # smoke: 30 clients, 3 s, all three
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PEERS = ROOT / "bench" / "peers"
CLIENT_JS = PEERS / "fanout_client.mjs"
SERVER_JS = PEERS / "fanout_server.mjs"
PASSWORD = "fan-out bench password"
ROOM_SIZE = 6
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVERS = {
    "full": "appliance FULL",
    "normal": "appliance NORMAL",
    "node": "Node socket.io 4",
}
DEFAULT_CLIENTS = "300,600,1000,1500,2000,3000,4500"


# ---------------------------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the web service and its message writer)."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += process_tree(int(child))
    return found


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def status_mib(pid: int, key: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_status_mib(pid: int, key: str) -> float:
    return sum(status_mib(p, key) for p in process_tree(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not iowait) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def raise_fd_limit(needed: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by every process started here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        print(f"WARNING: RLIMIT_NOFILE hard limit {target} < {needed} needed", flush=True)
    return target


# ---------------------------------------------------------------------------------------------
# Set-up: template data dir, users, rooms, tokens
# ---------------------------------------------------------------------------------------------


class NullNotifier:
    """Nobody is connected while the template is made."""

    async def to_everyone(
        self, event: str, payload: dict[str, Any], *, except_user: int | None = None
    ) -> None:
        return None

    async def to_user(
        self, user_id: int, event: str, payload: dict[str, Any], *, except_sid: str | None = None
    ) -> None:
        return None

    async def to_socket(self, sid: str, event: str, payload: dict[str, Any]) -> None:
        return None

    async def to_room(
        self,
        room_id: int,
        event: str,
        payload: dict[str, Any],
        *,
        except_sid: str | None = None,
        except_user: int | None = None,
    ) -> None:
        return None

    async def join_room(self, user_id: int, room_id: int) -> None:
        return None

    async def leave_room(self, user_id: int, room_id: int) -> None:
        return None


def username(index: int) -> str:
    return f"fan{index:05d}"


def write_config(data_dir: Path) -> None:
    """A fresh config (new secrets), set-up done, HTTPS off, tokens good for a day."""
    import tomlkit

    from appliance.bootstrap import ensure_config

    settings, _ = ensure_config(data_dir)
    doc = tomlkit.parse(settings.config_path.read_text())
    overrides: dict[str, dict[str, str | int]] = {
        "setup": {"token": ""},
        "web": {"host": "127.0.0.1", "https_port": 0},
        "auth": {"access_ttl": 86_400},
    }
    for section, values in overrides.items():
        table = doc.setdefault(section, tomlkit.table())
        for key, value in values.items():
            table[key] = value
    settings.config_path.write_text(tomlkit.dumps(doc))
    ensure_config(data_dir)  # removes the set-up token file


async def create_users_and_rooms(data_dir: Path, count: int) -> list[int]:
    """Users 0..count-1 (one argon2 hash shared: the same password), group rooms of ROOM_SIZE;
    returns each user's room id."""
    from appliance.config import load
    from appliance.container import Container

    container = Container(load(data_dir), NullNotifier())
    await container.db.start()
    try:
        password_hash = await container.passwords.hash(PASSWORD)
        ids = []
        for i in range(count):
            user = await container.users.create(
                username(i), password_hash, is_admin=False, now=time.time()
            )
            ids.append(user.id)
        rooms: list[int] = []
        for first in range(0, count, ROOM_SIZE):
            members = ids[first : first + ROOM_SIZE]
            view = await container.chat.create_group(
                members[0], f"fan-out room {first // ROOM_SIZE}", members[1:]
            )
            rooms += [view.room.id] * len(members)
        return rooms
    finally:
        await container.db.stop()


async def login_all(url: str, count: int, parallel: int = 4) -> list[str]:
    """One real HTTP login per user; the access tokens."""
    import aiohttp

    gate = asyncio.Semaphore(parallel)

    async def login(session: aiohttp.ClientSession, index: int) -> str:
        async with gate:
            body = {"username": username(index), "password": PASSWORD}
            async with session.post(url + "/api/auth/login", json=body) as response:
                if response.status != 200:
                    raise RuntimeError(f"login {index}: {response.status} {await response.text()}")
                return str((await response.json())["access_token"])

    async with aiohttp.ClientSession() as session:
        return list(await asyncio.gather(*(login(session, i) for i in range(count))))


def prepare(template: Path, count: int, logs: Path) -> list[dict[str, Any]]:
    write_config(template)
    rooms = asyncio.run(create_users_and_rooms(template, count))
    server = ApplianceServer(template, "FULL", logs / "login-server.log")
    try:
        tokens = asyncio.run(login_all(server.url, count))
    finally:
        server.stop()
    return [{"index": i, "room": rooms[i], "token": tokens[i]} for i in range(count)]


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def close_pipes(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


class Server:
    proc: subprocess.Popen[str]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        close_pipes(self.proc)

    def log_notes(self) -> list[str]:
        """ERROR/CRITICAL/Traceback lines of the server's log (the first few)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        keep = [ln for ln in lines if any(w in ln for w in ("ERROR", "CRITICAL", "Traceback"))]
        return keep[:5]


class ApplianceServer(Server):
    """`python -m appliance --data-dir D web`: the real web service (and its writer child)."""

    def __init__(self, data_dir: Path, synchronous: str, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "APPLIANCE_DATABASE__SYNCHRONOUS": synchronous}
        argv = [sys.executable, "-m", "appliance", "--data-dir", str(data_dir)]
        argv += ["--log-level", "warning", "web", "--host", "127.0.0.1", "--port", str(port)]
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, text=True
            )
        # uvicorn listens once the app's start-up (database, writer) is done.
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the appliance did not listen within 60 s")
            time.sleep(0.05)

    def stored_messages(self) -> int:
        with contextlib.closing(sqlite3.connect(self.data_dir / "appliance.db")) as db:
            return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])


class NodeServer(Server):
    def __init__(self, node: str, log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [node, str(SERVER_JS), "0"],
                cwd=PEERS,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"node server did not start: {log_path.read_text()[-2000:]}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"


# ---------------------------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------------------------


class Generator:
    """One node process with its share of the clients; JSON lines both ways."""

    def __init__(self, node: str, config: dict[str, Any], log: IO[str]) -> None:
        self.proc = subprocess.Popen(
            [node, str(CLIENT_JS)],
            cwd=PEERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.send(config)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def receive(self, kind: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no {kind!r} from a generator in {timeout:.0f} s") from None
            if not line:
                raise RuntimeError(f"a generator ended (exit {self.proc.wait()})")
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("type") == kind:
                    return record

    def ask(self, cmd: str, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        self.send({"cmd": cmd})
        return self.receive(kind, timeout)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "quit"})
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        close_pipes(self.proc)


# ---------------------------------------------------------------------------------------------
# One run: one server, one client count
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    server: str
    clients: int
    skipped: str = ""  # why the run did not happen
    generators: int = 0
    connected: int = 0
    failed: int = 0
    first_failure: str = ""
    connect_s: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    sent: int = 0  # messages sent inside the window
    expected: int = 0  # their deliveries to connected room members
    received: int = 0
    dropped: int = 0
    extra: int = 0  # received more than expected (duplicates)
    acked: int = 0
    ack_errors: int = 0
    first_ack_error: str = ""
    unanswered: int = 0  # window messages neither acked nor refused after the drain
    ack_p50_ms: float = 0.0
    ack_p95_ms: float = 0.0
    ack_p99_ms: float = 0.0
    disconnects: int = 0  # sockets lost after connecting
    first_disconnect: str = ""
    cpu: float = 0.0  # server (and children) CPU, % of one core, over the window
    rss: float = 0.0  # MiB, server and children, at the end of the window
    rss_peak: float = 0.0  # MiB, sum of the processes' VmHWM
    us_per_delivery: float = 0.0  # server CPU per delivered message
    generator_cpu: float = 0.0  # % of one core, all generators
    generator_cpu_max: float = 0.0  # the busiest generator
    other_cpu: float = 0.0  # the rest of the machine, % of one core
    stored: int | None = None  # messages in the database afterwards (appliance)
    seconds_measured: float = 0.0
    notes: list[str] = field(default_factory=list)


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def start_server(kind: str, template: Path, work: Path, node: str, tag: str) -> Server:
    if kind == "node":
        return NodeServer(node, work / f"{tag}.log")
    data_dir = work / tag
    shutil.copytree(template, data_dir)
    return ApplianceServer(data_dir, kind.upper(), work / f"{tag}.log")


def run_one(
    kind: str,
    specs: list[dict[str, Any]],
    template: Path,
    work: Path,
    node: str,
    args: argparse.Namespace,
) -> RunResult:
    n = len(specs)
    result = RunResult(SERVERS[kind], n)
    tag = f"{kind}-{n}"
    count = args.generators or max(2, math.ceil(n / 1500))
    count = min(count, n)
    result.generators = count
    server = start_server(kind, template, work, node, tag)
    generators: list[Generator] = []
    try:
        with (work / f"{tag}-generators.log").open("w") as log:
            for g in range(count):
                config = {
                    "url": server.url,
                    "server": "node" if kind == "node" else "appliance",
                    "deflate": not args.no_deflate,
                    "connect_concurrency": max(1, args.connect_concurrency // count),
                    "connect_timeout_ms": int(args.connect_timeout * 1000),
                    "clients": specs[g::count],
                }
                generators.append(Generator(node, config, log))
            measure(result, server, generators, specs, args)
    finally:
        for generator in generators:
            generator.stop()
        server.stop()
    if isinstance(server, ApplianceServer):
        with contextlib.suppress(sqlite3.Error):
            result.stored = server.stored_messages()
        shutil.rmtree(server.data_dir, ignore_errors=True)  # the logs stay until the end
    result.notes = server.log_notes()
    return result


def measure(
    result: RunResult,
    server: Server,
    generators: list[Generator],
    specs: list[dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    # Connect every client.
    started = time.monotonic()
    for generator in generators:
        generator.send({"cmd": "connect"})
    connected: list[int] = []
    for generator in generators:
        left = args.connect_deadline - (time.monotonic() - started)
        reply = generator.receive("connected", max(1.0, left))
        connected += reply["connected"]
        result.failed += int(reply["failed"])
        result.first_failure = result.first_failure or str(reply["first_failure"])
    result.connect_s = round(time.monotonic() - started, 2)
    result.connected = len(connected)
    room_of = {int(spec["index"]): str(spec["room"]) for spec in specs}
    room_sizes: dict[str, int] = {}
    for index in connected:
        room_sizes[room_of[index]] = room_sizes.get(room_of[index], 0) + 1

    # Send for warm-up + window; measure CPU over the window.
    start_ns = time.monotonic_ns() + 500_000_000
    for generator in generators:
        generator.send(
            {
                "cmd": "run",
                "start_ns": str(start_ns),
                "warmup_s": args.warmup,
                "seconds": args.seconds,
                "room_sizes": room_sizes,
            }
        )
    window_start = start_ns / 1e9 + args.warmup
    window_end = window_start + args.seconds
    pid = server.proc.pid
    gen_pids = [g.proc.pid for g in generators]
    sleep_until(window_start)
    server_before = tree_cpu_seconds(pid)
    gens_before = [cpu_seconds(p) for p in gen_pids]
    busy_before = machine_busy_seconds()
    sleep_until(window_end)
    server_after = tree_cpu_seconds(pid)
    gens_after = [cpu_seconds(p) for p in gen_pids]
    busy_after = machine_busy_seconds()
    result.rss = round(tree_status_mib(pid, "VmRSS"), 1)
    result.rss_peak = round(tree_status_mib(pid, "VmHWM"), 1)

    # Drain: until every expected delivery and every ack is in, or --drain seconds.
    while True:
        counts = [g.ask("count", "count") for g in generators]
        expected = sum(int(c["expected"]) for c in counts)
        received = sum(int(c["received"]) for c in counts)
        answered = sum(int(c["answered"]) for c in counts)
        sent = sum(int(c["sent"]) for c in counts)
        if (
            received >= expected and answered >= sent
        ) or time.monotonic() > window_end + args.drain:
            break
        time.sleep(0.2)
    reports = [g.ask("report", "report", timeout=60) for g in generators]

    latencies = sorted(x for r in reports for x in r["latencies"])
    acks = sorted(x for r in reports for x in r["ackMs"])
    result.p50_ms, result.p95_ms, result.p99_ms = (percentile(latencies, q) for q in PCT)
    result.max_ms = latencies[-1] if latencies else 0.0
    result.ack_p50_ms, result.ack_p95_ms, result.ack_p99_ms = (percentile(acks, q) for q in PCT)
    result.sent = sum(int(r["sent"]) for r in reports)
    result.expected = sum(int(r["expected"]) for r in reports)
    result.received = sum(int(r["received"]) for r in reports)
    result.dropped = max(0, result.expected - result.received)
    result.extra = max(0, result.received - result.expected)
    result.acked = sum(int(r["acked"]) for r in reports)
    result.ack_errors = sum(int(r["ackErrors"]) for r in reports)
    result.first_ack_error = next((r["firstAckError"] for r in reports if r["firstAckError"]), "")
    result.unanswered = result.sent - result.acked - result.ack_errors
    result.disconnects = sum(int(r["disconnects"]) for r in reports)
    result.first_disconnect = next(
        (r["firstDisconnect"] for r in reports if r["firstDisconnect"]), ""
    )
    result.seconds_measured = args.seconds
    server_cpu = server_after - server_before
    gens_cpu = [a - b for a, b in zip(gens_after, gens_before, strict=True)]
    result.cpu = round(100 * server_cpu / args.seconds, 1)
    result.generator_cpu = round(100 * sum(gens_cpu) / args.seconds, 1)
    result.generator_cpu_max = round(100 * max(gens_cpu) / args.seconds, 1)
    other = busy_after - busy_before - server_cpu - sum(gens_cpu)
    result.other_cpu = round(100 * max(0.0, other) / args.seconds, 1)
    if result.received:
        result.us_per_delivery = round(server_cpu / result.received * 1e6, 1)


PCT = (0.50, 0.95, 0.99)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def cell(run: RunResult | None) -> str:
    if run is None:
        return ""
    if run.skipped:
        return f"({run.skipped})"
    return (
        f"{ms(run.p50_ms)} / {ms(run.p95_ms)} / {ms(run.p99_ms)}, {run.cpu:.0f} %,"
        f" {run.rss:.0f} MiB, {run.dropped:,} / {run.failed:,}, {run.connect_s:.1f} s"
    )


def report(runs: list[RunResult], kinds: list[str]) -> str:
    counts = sorted({r.clients for r in runs})
    by_key = {(r.server, r.clients): r for r in runs}
    header = ["clients"] + [
        f"{SERVERS[k]}: p50 / p95 / p99 ms, CPU, RSS, dropped / failed, connect" for k in kinds
    ]
    main_table = markdown_table(
        header,
        [[f"{n:,}"] + [cell(by_key.get((SERVERS[k], n))) for k in kinds] for n in counts],
    )
    detail = markdown_table(
        [
            "server",
            "clients",
            "sent/s",
            "delivered/s",
            "ack p50 / p95 / p99 ms",
            "server µs / delivery",
            "peak RSS MiB",
            "generators CPU (busiest)",
            "other load",
            "disconnects",
            "unanswered",
            "stored",
        ],
        [
            [
                r.server,
                f"{r.clients:,}",
                f"{r.sent / max(r.seconds_measured, 1e-9):,.0f}",
                f"{r.received / max(r.seconds_measured, 1e-9):,.0f}",
                f"{ms(r.ack_p50_ms)} / {ms(r.ack_p95_ms)} / {ms(r.ack_p99_ms)}",
                f"{r.us_per_delivery:.0f}",
                f"{r.rss_peak:.0f}",
                f"{r.generator_cpu:.0f} % ({r.generator_cpu_max:.0f} % of {r.generators})",
                f"{r.other_cpu:.0f} %",
                str(r.disconnects),
                str(r.unanswered),
                "" if r.stored is None else f"{r.stored:,}",
            ]
            for r in runs
            if not r.skipped
        ],
    )
    return main_table + "\n\n" + detail


def machine(node: str) -> dict[str, str]:
    from importlib import metadata

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def js_version(package: str) -> str:
        with contextlib.suppress(OSError, ValueError, KeyError):
            path = PEERS / "node_modules" / package / "package.json"
            return str(json.loads(path.read_text())["version"])
        return "?"

    info = {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
        "socket.io (node)": js_version("socket.io"),
        "socket.io-client": js_version("socket.io-client"),
    }
    for dist in ("python-socketio", "python-engineio", "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    return info


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not counts or counts[0] < 2:
        raise argparse.ArgumentTypeError("client counts must be 2 or more")
    return counts


def parse_servers(text: str) -> list[str]:
    kinds = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [k for k in kinds if k not in SERVERS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"servers are among {', '.join(SERVERS)}")
    return kinds


def find_node() -> str:
    node = shutil.which("node") or shutil.which("node", path=str(ROOT / ".venv" / "bin"))
    if node is None:
        raise SystemExit("node is not on PATH: run scripts/setup --dev")
    for package in ("socket.io", "socket.io-client"):
        if not (PEERS / "node_modules" / package).is_dir():
            raise SystemExit(
                "bench/peers/node_modules is missing: run `npm ci --prefix bench/peers`"
                " (scripts/setup --dev does it)"
            )
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=parse_counts, default=parse_counts(DEFAULT_CLIENTS))
    parser.add_argument("--servers", type=parse_servers, default=list(SERVERS))
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="sending before the window")
    parser.add_argument("--drain", type=float, default=15.0, help="max wait for late deliveries")
    parser.add_argument("--generators", type=int, default=0, help="0: max(2, clients / 1500)")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--connect-timeout", type=float, default=20.0, help="per client, s")
    parser.add_argument("--connect-deadline", type=float, default=600.0, help="all clients, s")
    parser.add_argument("--give-up-ms", type=float, default=3000.0)
    parser.add_argument("--no-deflate", action="store_true", help="clients offer no deflate")
    parser.add_argument("--quick", action="store_true", help="smoke: 30 clients, 3 s")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tmp-dir", type=Path, help="where the data dirs go (default: $TMPDIR)")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.seconds, args.warmup, args.drain = [30], 3.0, 1.0, 5.0
    if args.warmup < 1.0:
        parser.error("--warmup must be at least 1 s (every client sends once before the window)")

    node = find_node()
    most = max(args.clients)
    raise_fd_limit(most * 2 + 1000)
    info = machine(node)
    for key, value in info.items():
        print(f"{key}: {value}", flush=True)
    started = time.monotonic()
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="fanout-bench-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        print(f"setting up {most} users, rooms of {ROOM_SIZE}, one HTTP login each ...", flush=True)
        specs = prepare(work / "template", most, work)
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
        given_up: dict[str, str] = {}
        for n in args.clients:
            for kind in args.servers:
                if kind in given_up:
                    runs.append(RunResult(SERVERS[kind], n, skipped=given_up[kind]))
                    continue
                print(f"{SERVERS[kind]}, {n} clients ...", flush=True)
                try:
                    run = run_one(kind, specs[:n], work / "template", work, node, args)
                except (RuntimeError, TimeoutError) as exc:
                    run = RunResult(SERVERS[kind], n, skipped=f"failed: {exc}"[:200])
                    given_up[kind] = f"not run: failed at {n:,}"
                    print(f"  {run.skipped}", flush=True)
                    runs.append(run)
                    continue
                runs.append(run)
                print(f"  {cell(run)}", flush=True)
                if run.p95_ms > args.give_up_ms:
                    given_up[kind] = f"not run: p95 {run.p95_ms:,.0f} ms at {n:,}"
                elif run.failed > 0.05 * n:
                    given_up[kind] = f"not run: {run.failed:,} failed at {n:,}"
    elapsed = time.monotonic() - started

    print()
    print(report(runs, args.servers))
    for run in runs:
        for text in (run.first_failure, run.first_ack_error, run.first_disconnect):
            if text:
                print(f"{run.server} {run.clients}: {text}")
        for note in run.notes[:3]:
            print(f"{run.server} {run.clients} server log: {note}")
        if run.generator_cpu_max > 80:
            print(f"WARNING {run.server} {run.clients}: a generator used {run.generator_cpu_max} %")
        busy = run.cpu + run.generator_cpu + run.other_cpu
        if not run.skipped and busy > 85 * (os.cpu_count() or 1):
            print(
                f"WARNING {run.server} {run.clients}: the machine was saturated ({busy:.0f} % of"
                f" {os.cpu_count()} cores: server {run.cpu:.0f}, generators"
                f" {run.generator_cpu:.0f}, other {run.other_cpu:.0f})"
            )
    print(f"\ntotal {elapsed:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "runs": [asdict(r) for r in runs],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
