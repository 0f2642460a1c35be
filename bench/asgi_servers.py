"""Compare ASGI servers for the `web` service by measurement (see docs/benchmarks.md).

Each configuration serves the real `WebApp` in its own subprocess on 127.0.0.1 (a free port),
with one bench-only Socket.IO event pair registered by this script, never by the product:

  bench:echo   acks its payload back
  bench:blast  broadcasts `n` small `bench:tick` events to every connected socket, then acks

This process is the client: it logs a user in over HTTP and drives python-socketio AsyncClients
over the websocket transport, measuring

  1. acked round trips per second, sequential `call("bench:echo")` per client, 1 and 20 clients,
     with p50/p99 latency;
  2. server->client broadcast throughput: events delivered per second to 20 clients;
  3. the server's CPU time per round trip, its RSS once started and its peak RSS (VmHWM).

Configurations run in rounds, alternating (each round starts one further along the list), so
drift on a shared machine hits them all alike. Run from the repository root:

  .venv/bin/python bench/asgi_servers.py                  # default: 3 rounds, ~2 minutes
  .venv/bin/python bench/asgi_servers.py --rounds 1 --duration 2 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

USERNAME = "bench"
PASSWORD = "bench password 1234"
ECHO_TEXT = "x" * 48
TICK_TEXT = "y" * 48
CLK_TCK = os.sysconf("SC_CLK_TCK")

T = TypeVar("T")


@dataclass(frozen=True)
class ServerConfig:
    server: Literal["uvicorn", "hypercorn"]
    loop: Literal["uvloop", "asyncio"]
    ws: str  # uvicorn's ws implementation; hypercorn always speaks websocket through wsproto


CONFIGS: dict[str, ServerConfig] = {
    # The product default (appliance/transport/server.py).
    "uvicorn+uvloop+websockets-sansio": ServerConfig("uvicorn", "uvloop", "websockets-sansio"),
    "uvicorn+uvloop+websockets": ServerConfig("uvicorn", "uvloop", "websockets"),
    # web.server = "hypercorn" in the product runs this one.
    "hypercorn+asyncio": ServerConfig("hypercorn", "asyncio", "wsproto"),
    "hypercorn+uvloop": ServerConfig("hypercorn", "uvloop", "wsproto"),
    # Not run by default; pick with --configs.
    "uvicorn+uvloop+wsproto": ServerConfig("uvicorn", "uvloop", "wsproto"),
    "uvicorn+asyncio+websockets-sansio": ServerConfig("uvicorn", "asyncio", "websockets-sansio"),
}
DEFAULT_CONFIGS = list(CONFIGS)[:4]


# ---------------------------------------------------------------------------------------------
# Server side (runs in the subprocess)
# ---------------------------------------------------------------------------------------------


def register_bench_events(sio: Any) -> None:
    """The bench-only events; they live in this script, never in the product."""

    async def echo(sid: str, data: Any = None) -> Any:
        return data

    async def blast(sid: str, data: Any = None) -> dict[str, Any]:
        n = int(data["n"]) if isinstance(data, dict) else 0
        for i in range(n):
            await sio.emit("bench:tick", {"i": i, "text": TICK_TEXT})
        return {"ok": True, "n": n}

    sio.on("bench:echo", echo)
    sio.on("bench:blast", blast)


def serve(name: str, data_dir: Path) -> None:
    """Serve the real WebApp as appliance/transport/server.py does, on a free loopback port."""
    from appliance.config import load
    from appliance.transport.asgi import WebApp
    from tests.support import bind_loopback

    config = CONFIGS[name]
    settings = load(data_dir)
    web = settings.config.web
    app = WebApp(settings)
    register_bench_events(app.sio)
    sock = bind_loopback()
    print(f"PORT {sock.getsockname()[1]}", flush=True)

    if config.server == "hypercorn":
        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config as HypercornConfig

        hc = HypercornConfig()
        hc.bind = [f"fd://{sock.fileno()}"]
        hc.websocket_max_message_size = web.max_http_buffer_size
        hc.accesslog = None
        # WebApp.asgi's scope is a plain dict[str, Any]; hypercorn's are TypedDicts (as in
        # appliance/transport/server.py).
        main = hypercorn_serve(app.asgi, hc)  # type: ignore[arg-type]
        if config.loop == "uvloop":
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)
        return

    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            app.asgi,
            loop=config.loop,
            ws=config.ws,
            ws_max_size=web.max_http_buffer_size,
            lifespan="on",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )
    )
    server.run(sockets=[sock])


# ---------------------------------------------------------------------------------------------
# Client side (this process)
# ---------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    config: str
    round: int
    rtt_1: float = 0.0  # round trips/s, one client
    p50_1_ms: float = 0.0
    p99_1_ms: float = 0.0
    rtt_20: float = 0.0  # round trips/s, 20 clients together
    p50_20_ms: float = 0.0
    p99_20_ms: float = 0.0
    cpu_us_per_rt: float = 0.0  # server CPU time per round trip in the 20-client phase
    blast_eps: float = 0.0  # broadcast events delivered per second (to all clients together)
    cpu_us_per_ev: float = 0.0  # server CPU time per delivered broadcast event
    rss_start_mb: float = 0.0  # once started and a user logged in
    rss_loaded_mb: float = 0.0  # after the broadcast, 20 sockets still connected
    # Peak RSS of the server process (VmHWM). Set by argon2 (64 MiB per hash, see the docs) at
    # start-up and login, not by the ASGI server.
    rss_peak_mb: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the server wrote to stderr


def proc_status(pid: int, key: str) -> float:
    """A `kB` field of /proc/PID/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Clients:
    """N socket.io clients of one user, each counting the broadcast ticks it receives."""

    def __init__(self, url: str, token: str, deflate: bool) -> None:
        self.url = url
        self.token = token
        self.extra = {"websocket_extra_options": {"compress": 15}} if deflate else {}
        self.sockets: list[Any] = []
        self.ticks: list[int] = []
        self.tick_target = 0
        self.waiting = 0  # sockets still short of tick_target
        self.all_ticked = asyncio.Event()

    async def open(self, n: int) -> None:
        import socketio

        async def one(index: int) -> Any:
            sio = socketio.AsyncClient(reconnection=False, **self.extra)
            self.ticks.append(0)

            async def tick(data: Any = None) -> None:
                self.ticks[index] += 1
                if self.ticks[index] == self.tick_target:
                    self.waiting -= 1
                    if self.waiting == 0:
                        self.all_ticked.set()

            sio.on("bench:tick", tick)
            await sio.connect(
                self.url, auth={"token": self.token}, transports=["websocket"], wait_timeout=10
            )
            return sio

        # Sequential connects: the point is steady state, not a connect storm.
        for index in range(len(self.sockets), len(self.sockets) + n):
            self.sockets.append(await one(index))

    async def close(self) -> None:
        await asyncio.gather(*(s.disconnect() for s in self.sockets), return_exceptions=True)

    async def echo(self, count: int, duration: float) -> tuple[int, float, list[float]]:
        """Sequential acked calls on each of the first `count` sockets for `duration` seconds."""
        latencies: list[float] = []
        done = 0
        stop_at = time.perf_counter() + duration

        async def worker(sio: Any) -> None:
            nonlocal done
            seq = 0
            while (start := time.perf_counter()) < stop_at:
                payload = {"seq": seq, "text": ECHO_TEXT}
                reply = await sio.call("bench:echo", payload, timeout=10)
                latencies.append(time.perf_counter() - start)
                if reply != payload:
                    raise AssertionError(f"echo returned {reply!r}")
                seq += 1
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in self.sockets[:count]))
        return done, time.perf_counter() - started, latencies

    async def blast(self, n: int) -> float:
        """Seconds from asking for `n` broadcast ticks until every socket has all of them."""
        self.ticks[:] = [0] * len(self.ticks)
        self.all_ticked.clear()
        self.tick_target = n
        self.waiting = len(self.sockets)
        started = time.perf_counter()
        reply = await self.sockets[0].call("bench:blast", {"n": n}, timeout=60)
        assert reply == {"ok": True, "n": n}, reply
        await asyncio.wait_for(self.all_ticked.wait(), timeout=60)
        elapsed = time.perf_counter() - started
        self.tick_target = 0
        return elapsed


async def login(url: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        deadline = time.monotonic() + 20
        while True:
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become healthy in 20 s")
            await asyncio.sleep(0.05)
        response = await http.post(
            "/api/auth/login", json={"username": USERNAME, "password": PASSWORD}
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


async def drive(result: RunResult, url: str, pid: int, args: argparse.Namespace) -> None:
    token = await login(url)
    result.rss_start_mb = proc_status(pid, "VmRSS")
    clients = Clients(url, token, args.deflate)
    try:
        await clients.open(1)
        await clients.echo(1, args.warmup)
        done, elapsed, lat = await clients.echo(1, args.duration)
        result.rtt_1 = done / elapsed
        result.p50_1_ms = percentile(lat, 0.5) * 1000
        result.p99_1_ms = percentile(lat, 0.99) * 1000

        await clients.open(args.clients - 1)
        await clients.echo(args.clients, args.warmup)
        cpu_before = proc_cpu_seconds(pid)
        done, elapsed, lat = await clients.echo(args.clients, args.duration)
        cpu = proc_cpu_seconds(pid) - cpu_before
        result.rtt_20 = done / elapsed
        result.p50_20_ms = percentile(lat, 0.5) * 1000
        result.p99_20_ms = percentile(lat, 0.99) * 1000
        result.cpu_us_per_rt = cpu / done * 1e6

        await clients.blast(50)  # warm-up
        cpu_before = proc_cpu_seconds(pid)
        elapsed = await clients.blast(args.blast)
        delivered = args.blast * len(clients.sockets)
        result.blast_eps = delivered / elapsed
        result.cpu_us_per_ev = (proc_cpu_seconds(pid) - cpu_before) / delivered * 1e6
        result.rss_loaded_mb = proc_status(pid, "VmRSS")
    finally:
        await clients.close()
    result.rss_peak_mb = proc_status(pid, "VmHWM")


def run_one(
    name: str, round_no: int, data_dir: Path, log_dir: Path, args: argparse.Namespace
) -> RunResult:
    result = RunResult(name, round_no)
    log_path = log_dir / f"{name}-{round_no}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "_serve", name, str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"server did not start: {line!r}")
        url = f"http://127.0.0.1:{int(line.split()[1])}"
        run_async(drive(result, url, proc.pid, args), timeout=args.run_timeout)
    except Exception as exc:  # one failed configuration must not sink the others
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            result.errors.append("server ignored SIGTERM for 10 s")
    for line in log_path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("warnings.warn(") and "[INFO] Running on" not in line:
            result.notes.append(line[:240])
    return result


def run_async(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    import uvloop

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(bounded())


def create_user(data_dir: Path) -> None:
    from tests.support import make_settings

    make_settings(data_dir)
    cli = Path(sys.executable).with_name("appliance")
    subprocess.run(
        [str(cli), "--data-dir", str(data_dir), "user", "add", USERNAME],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

COLUMNS: list[tuple[str, str, Callable[[RunResult], float], str]] = [
    ("rt/s c=1", "rtt_1", lambda r: r.rtt_1, "{:.0f}"),
    ("p50 ms", "p50_1_ms", lambda r: r.p50_1_ms, "{:.2f}"),
    ("p99 ms", "p99_1_ms", lambda r: r.p99_1_ms, "{:.2f}"),
    ("rt/s c=20", "rtt_20", lambda r: r.rtt_20, "{:.0f}"),
    ("p50 ms", "p50_20_ms", lambda r: r.p50_20_ms, "{:.2f}"),
    ("p99 ms", "p99_20_ms", lambda r: r.p99_20_ms, "{:.2f}"),
    ("srv CPU us/rt", "cpu_us_per_rt", lambda r: r.cpu_us_per_rt, "{:.0f}"),
    ("bcast ev/s", "blast_eps", lambda r: r.blast_eps, "{:.0f}"),
    ("srv CPU us/ev", "cpu_us_per_ev", lambda r: r.cpu_us_per_ev, "{:.1f}"),
    ("RSS start MiB", "rss_start_mb", lambda r: r.rss_start_mb, "{:.1f}"),
    ("RSS loaded MiB", "rss_loaded_mb", lambda r: r.rss_loaded_mb, "{:.1f}"),
    ("peak RSS MiB", "rss_peak_mb", lambda r: r.rss_peak_mb, "{:.1f}"),
]
RANGED = {"rtt_1", "rtt_20", "blast_eps"}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def summary(results: list[RunResult], names: list[str]) -> str:
    """Median over the good rounds, with min-max for the throughput columns."""
    rows = []
    for name in names:
        good = [r for r in results if r.config == name and not r.errors]
        row = [name, str(len(good))]
        for _, key, get, fmt in COLUMNS:
            values = [get(r) for r in good]
            if not values:
                row.append("-")
                continue
            cell = fmt.format(statistics.median(values))
            if key in RANGED and len(values) > 1:
                cell += f" ({fmt.format(min(values))}-{fmt.format(max(values))})"
            row.append(cell)
        rows.append(row)
    header = ["configuration", "ok runs", *(c[0] for c in COLUMNS)]
    return markdown_table(header, rows)


def per_run(results: list[RunResult]) -> str:
    rows = [
        [r.config, str(r.round), *(fmt.format(get(r)) for _, _, get, fmt in COLUMNS)]
        for r in results
    ]
    return markdown_table(["configuration", "round", *(c[0] for c in COLUMNS)], rows)


def loadavg() -> str:
    """1, 5 and 15 minute load averages: how busy the shared machine was around the run."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    libs = [
        "uvicorn",
        "hypercorn",
        "uvloop",
        "websockets",
        "wsproto",
        "python-socketio",
        "python-engineio",
        "quart",
        "aiohttp",
    ]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": loadavg(),
        **{lib: metadata.version(lib) for lib in libs},
    }


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        serve(argv[1], Path(argv[2]))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per echo phase")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before each phase")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--blast", type=int, default=1000, help="broadcast events per client")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="negotiate permessage-deflate like browsers do (default: off, as aiohttp)",
    )
    parser.add_argument("--run-timeout", type=float, default=60.0, help="limit per server run")
    parser.add_argument("--budget", type=float, default=280.0, help="stop starting runs after")
    parser.add_argument("--json", type=Path, help="also write raw results and machine info here")
    args = parser.parse_args(argv)

    began = time.monotonic()
    info = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="asgi-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        create_user(data_dir)
        names = list(args.configs)
        order = [
            (round_no, names[(round_no - 1 + i) % len(names)])
            for round_no in range(1, args.rounds + 1)
            for i in range(len(names))
        ]
        for round_no, name in order:
            if time.monotonic() - began > args.budget:
                print(f"budget of {args.budget:.0f} s used up; stopping early", flush=True)
                break
            result = run_one(name, round_no, data_dir, Path(tmp), args)
            results.append(result)
            status = "; ".join(result.errors) if result.errors else "ok"
            print(
                f"round {round_no} {name}: {result.rtt_1:.0f} rt/s c=1, "
                f"{result.rtt_20:.0f} rt/s c={args.clients}, "
                f"{result.blast_eps:.0f} ev/s, peak {result.rss_peak_mb:.1f} MiB [{status}]",
                flush=True,
            )
            for note in dict.fromkeys(result.notes):
                print(f"  server stderr: {note}", flush=True)
    print()
    print(per_run(results))
    print()
    print(summary(results, list(args.configs)))
    print(
        f"\nwall time {time.monotonic() - began:.0f} s; load average at start {info['loadavg']}, "
        f"at end {loadavg()}",
        flush=True,
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "args": vars(args) | {"json": str(args.json)}}
                | {"results": [asdict(r) for r in results]},
                indent=2,
            )
        )
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
