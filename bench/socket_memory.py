"""Memory per idle Socket.IO socket (issue #13: "RSS per connected idle socket under 20 KiB, the
whole web process under 250 MiB at 3,000 sockets and back near its idle size after they leave",
and "what grows memory per socket").

For each client count, on a fresh copy of one template data dir (bench/fanout.py's: users
fan00000.. made through the appliance's services, group rooms of 6, `web.https_port = 0`, access
tokens good for a day), the real `web` service is started (`python -m appliance ... web`, its
message-writer child beside it, the environment `appliance up` gives it: SERVICES' `web` entry)
and measured from /proc (RSS and PSS from smaps_rollup, the web process alone and with its
children) in four phases:

  rest       `--settle` seconds after it listens, no socket yet;
  connected  N idle authenticated Socket.IO websocket clients (bench/peers/fanout_client.mjs
             under node, the official socket.io-client, in processes of their own; at most
             `--connect-concurrency` handshakes in flight; they send nothing but engine.io's
             pongs), `--settle` seconds after the last one connected;
  left       the clients closed, the server's sockets gone (its open files back to the rest
             count) and `--leave-settle` seconds more (35: engine.io's ping task keeps a
             closed socket's objects for up to ping_interval, 25 s; presence has a 5 s grace);
  trimmed    right after glibc's malloc_trim(0) in the web process: what of `left` is free
             memory that malloc kept rather than memory still in use.

KiB per socket = (connected - rest) / N. The access tokens are issued by the appliance's own
AuthService.start_login (what a login does once the password matched), so no argon2 hash is paid
per user; each handshake checks its token against the store as usual.

A small probe runs inside the web process (a `sitecustomize` on PYTHONPATH, only in the process
whose command line is `-m appliance ... web`; `--no-probe`: none): a thread that, when the bench
asks through files in a control dir, collects garbage and reports glibc malloc's figures
(mallinfo2), pymalloc's (sys._debugmallocstats), live objects by type and asyncio tasks by
coroutine, runs malloc_trim, and with `--tracemalloc N` (tracing from interpreter start-up with
N frames, what PYTHONTRACEMALLOC=N does, in the web process only) dumps tracemalloc snapshots;
the bench then reports the bytes per socket of each allocation site, grouped by where they were
allocated (the innermost frame and the two nearest callers in the appliance or a library).
Under tracemalloc the process is bigger and slower: read its KiB per socket from a run without.

  .venv/bin/python bench/socket_memory.py                       # 1,000 and 3,000 clients
  .venv/bin/python bench/socket_memory.py --clients 1000 --tracemalloc 16 --json out.json
  .venv/bin/python bench/socket_memory.py --clients 1000 --env MALLOC_ARENA_MAX=2
  .venv/bin/python bench/socket_memory.py --clients 1000 --tls   # over wss:// as browsers are
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import linecache
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fanout import (  # noqa: E402
    ApplianceServer,
    Generator,
    NullNotifier,
    create_users_and_rooms,
    find_node,
    free_port,
    parse_counts,
    process_tree,
    raise_fd_limit,
    tree_cpu_seconds,
    username,
    write_config,
)

PROBE_ENV = "SOCKET_MEMORY_PROBE"  # the probe's control dir
TRACE_ENV = "SOCKET_MEMORY_TRACE"  # tracemalloc frames (0: off)
KIB = 1024
MIB = 1024 * 1024

#: Written to the probe dir as sitecustomize.py: loads the probe in the web process only.
SITECUSTOMIZE = """\
import os as _os

if _os.environ.get({env!r}):
    with open("/proc/self/cmdline", "rb") as _f:
        _argv = _f.read().split(b"\\0")
    if b"appliance" in _argv and b"web" in _argv:
        import sys as _sys

        _sys.path.insert(0, {root!r})
        try:
            from bench.socket_memory import start_probe as _start
        finally:
            _sys.path.remove({root!r})
        _start()
"""


# ---------------------------------------------------------------------------------------------
# The probe: runs inside the web process
# ---------------------------------------------------------------------------------------------


def start_probe() -> None:
    """Start tracemalloc if asked, and the thread that answers the bench's requests."""
    control = Path(os.environ[PROBE_ENV])
    frames = int(os.environ.get(TRACE_ENV, "0") or 0)
    if frames > 0:
        import tracemalloc

        tracemalloc.start(frames)
    thread = threading.Thread(target=_probe_loop, args=(control,), name="memory-probe")
    thread.daemon = True
    thread.start()


def _probe_loop(control: Path) -> None:
    while True:
        for request in sorted(control.glob("*.req")):
            name = request.stem
            try:
                command = json.loads(request.read_text())
            except (OSError, ValueError):
                continue
            request.unlink()
            try:
                answer = _probe_answer(command, control / f"{name}.snap")
            except Exception as exc:  # reported to the bench, which fails the run
                answer = {"error": repr(exc)}
            partial = control / f"{name}.part"
            partial.write_text(json.dumps(answer))
            partial.rename(control / f"{name}.json")
        time.sleep(0.1)


def _probe_answer(command: dict[str, Any], snapshot_path: Path) -> dict[str, Any]:
    import tracemalloc

    action = command["cmd"]
    if action == "trim":
        started = time.perf_counter()
        released = _libc().malloc_trim(0)
        seconds = time.perf_counter() - started
        return {"released": bool(released), "seconds": seconds, "malloc": _mallinfo()}
    if action != "stats":
        raise ValueError(f"unknown probe command {action!r}")
    gc.collect()
    answer: dict[str, Any] = {
        "malloc": _mallinfo(),
        "pymalloc": _pymalloc_stats(),
        "types": _type_counts(),
        "tasks": _task_counts(),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        answer["traced"] = {"current": current, "peak": peak}
        if command.get("snapshot"):
            snapshot = tracemalloc.take_snapshot()
            snapshot.dump(str(snapshot_path))
            answer["snapshot"] = str(snapshot_path)
    return answer


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL("libc.so.6")


def _mallinfo() -> dict[str, int]:
    """glibc's mallinfo2, summed over all arenas: bytes from the system (arena: brk heap and
    thread heaps; mmapped: large blocks), in use and free inside them."""
    import ctypes

    names = [
        "arena",
        "ordblks",
        "smblks",
        "hblks",
        "hblkhd",
        "usmblks",
        "fsmblks",
        "uordblks",
        "fordblks",
        "keepcost",
    ]

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in names]

    mallinfo2 = _libc().mallinfo2
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return {
        "heap": int(info.arena),
        "mmapped": int(info.hblkhd),
        "in_use": int(info.uordblks),
        "free": int(info.fordblks),
        "top_releasable": int(info.keepcost),
    }


def _pymalloc_stats() -> dict[str, int]:
    """The totals of sys._debugmallocstats() (it prints to the C stderr: caught in a file)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as out:
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    wanted = {
        "# arenas allocated current": "arenas",
        "# bytes in allocated blocks": "blocks_in_use",
        "# bytes in available blocks": "blocks_free",
    }
    stats: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        key = key.strip()
        if key.endswith("bytes/arena"):  # "12 arenas * 1048576 bytes/arena"
            key = "# arena bytes"
            wanted[key] = "arena_bytes"
        elif key.endswith("unused pools * 16384 bytes"):
            key = "# unused pools"
            wanted[key] = "unused_pools"
        if key in wanted:
            with contextlib.suppress(ValueError):
                stats[wanted[key]] = int(value.strip().replace(",", ""))
    return stats


def _type_counts() -> dict[str, int]:
    """Objects the collector tracks (containers; not bytes or str), by type, 20 or more."""
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    return {name: n for name, n in counts.items() if n >= 20}


def _task_counts() -> dict[str, int]:
    """Live asyncio tasks by their coroutine's name."""
    counts: Counter[str] = Counter()
    for o in gc.get_objects():
        if isinstance(o, asyncio.Task):
            coro = o.get_coro()
            counts[getattr(coro, "__qualname__", type(coro).__name__)] += 1
    return dict(counts)


# ---------------------------------------------------------------------------------------------
# The bench side
# ---------------------------------------------------------------------------------------------


class ProbeClient:
    def __init__(self, control: Path) -> None:
        self.control = control
        self._seq = 0

    def ask(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        self._seq += 1
        name = f"{self._seq:03d}-{command['cmd']}"
        partial = self.control / f"{name}.tmp"
        partial.write_text(json.dumps(command))
        partial.rename(self.control / f"{name}.req")
        answer_path = self.control / f"{name}.json"
        deadline = time.monotonic() + timeout
        while not answer_path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the probe did not answer {command['cmd']!r} in {timeout} s")
            time.sleep(0.05)
        answer: dict[str, Any] = json.loads(answer_path.read_text())
        if "error" in answer:
            raise RuntimeError(f"probe: {answer['error']}")
        return answer


def smaps_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous (KiB) of one process, from /proc/<pid>/smaps_rollup."""
    found = {"rss": 0, "pss": 0, "anon": 0}
    keys = {"Rss:": "rss", "Pss:": "pss", "Anonymous:": "anon"}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name = keys.get(line.split(" ", 1)[0])
            if name is not None:
                found[name] = int(line.split()[1])
    return found


def status_kib(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


@dataclass
class Sample:
    phase: str
    web_rss_kib: int = 0
    web_pss_kib: int = 0
    web_anon_kib: int = 0
    tree_rss_kib: int = 0  # web and its children (the message writer)
    tree_pss_kib: int = 0
    open_files: int = 0
    cpu_percent: float = 0.0  # web tree, over the settle time before the sample
    probe: dict[str, Any] = field(default_factory=dict)


def sample(phase: str, pid: int, cpu_percent: float = 0.0) -> Sample:
    web = smaps_kib(pid)
    tree = [smaps_kib(p) for p in process_tree(pid)]
    return Sample(
        phase,
        web_rss_kib=web["rss"],
        web_pss_kib=web["pss"],
        web_anon_kib=web["anon"],
        tree_rss_kib=sum(m["rss"] for m in tree),
        tree_pss_kib=sum(m["pss"] for m in tree),
        open_files=open_files(pid),
        cpu_percent=cpu_percent,
    )


def settle(pid: int, seconds: float) -> float:
    """Wait; the web tree's CPU meanwhile, % of one core."""
    before = tree_cpu_seconds(pid)
    time.sleep(seconds)
    return round(100 * (tree_cpu_seconds(pid) - before) / max(seconds, 1e-9), 1)


@dataclass
class Site:
    bytes_per_socket: float
    allocs_per_socket: float
    component: str
    frames: list[str]


@dataclass
class RunResult:
    clients: int
    connected: int = 0
    failed: int = 0
    first_failure: str = ""
    connect_s: float = 0.0
    leave_s: float = 0.0  # until the server's open files were back to the rest count
    samples: list[Sample] = field(default_factory=list)
    peak_rss_kib: int = 0  # web's VmHWM at the end
    rss_kib_per_socket: float = 0.0  # web, (connected - rest) / connected
    pss_kib_per_socket: float = 0.0
    tree_pss_kib_per_socket: float = 0.0
    kept_rss_kib: int = 0  # web, left - rest
    kept_after_trim_kib: int = 0  # web, trimmed - rest
    trim_ms: float = 0.0  # how long malloc_trim(0) took (the event loop's thread waits)
    objects_per_socket: dict[str, float] = field(default_factory=dict)
    tasks_per_socket: dict[str, float] = field(default_factory=dict)
    objects_kept: dict[str, int] = field(default_factory=dict)  # left - rest
    traced_bytes_per_socket: float = 0.0
    traced_kept_bytes: int = 0
    components: dict[str, float] = field(default_factory=dict)  # bytes per socket
    sites: list[Site] = field(default_factory=list)  # connected - rest, per socket
    kept_sites: list[Site] = field(default_factory=list)  # left - rest, per departed socket
    traced: bool = False  # under tracemalloc: RSS includes the traces
    notes: list[str] = field(default_factory=list)


# -- set-up ------------------------------------------------------------------------------------


async def mint_tokens(data_dir: Path, count: int) -> list[str]:
    """An access token per user from AuthService.start_login: a real login (recorded, signed),
    minus the password check."""
    from appliance.config import load
    from appliance.container import Container

    container = Container(load(data_dir), NullNotifier())
    await container.db.start()
    try:
        tokens = []
        for i in range(count):
            user = await container.users.by_username(username(i))
            if user is None:
                raise RuntimeError(f"user {username(i)} is missing")
            pair = await container.auth.start_login(user, "127.0.0.1", "bench/socket_memory.py")
            tokens.append(pair.access_token)
        return tokens
    finally:
        await container.db.stop()


def prepare(template: Path, count: int) -> list[dict[str, Any]]:
    write_config(template)
    rooms = asyncio.run(create_users_and_rooms(template, count))
    tokens = asyncio.run(mint_tokens(template, count))
    return [{"index": i, "room": rooms[i], "token": tokens[i]} for i in range(count)]


@contextlib.contextmanager
def environment(changes: dict[str, str]) -> Iterator[None]:
    """os.environ with `changes` while the server and the generators are started (they copy it)."""
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def server_environment(args: argparse.Namespace, work: Path, control: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    if not args.no_service_env:
        from appliance.supervision.services import SERVICES

        env.update(next(s for s in SERVICES if s.name == "web").environment)
    if not args.no_probe:
        probe_dir = work / "probe"
        probe_dir.mkdir(exist_ok=True)
        stub = SITECUSTOMIZE.format(env=PROBE_ENV, root=str(ROOT))
        (probe_dir / "sitecustomize.py").write_text(stub)
        path = [str(probe_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        env.update({"PYTHONPATH": os.pathsep.join(path), PROBE_ENV: str(control)})
        if args.tracemalloc:
            env[TRACE_ENV] = str(args.tracemalloc)
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


# -- one run -----------------------------------------------------------------------------------


def run_one(
    specs: list[dict[str, Any]], template: Path, work: Path, node: str, args: argparse.Namespace
) -> RunResult:
    n = len(specs)
    result = RunResult(n, traced=args.tracemalloc > 0)
    tag = f"web-{n}"
    data_dir = work / tag
    shutil.copytree(template, data_dir)
    control = work / f"{tag}-probe"
    control.mkdir()
    env = server_environment(args, work, control)
    tls_port = free_port() if args.tls else 0
    if tls_port:
        env["APPLIANCE_WEB__HTTPS_PORT"] = str(tls_port)
    with environment(env):
        server = ApplianceServer(data_dir, "FULL", work / f"{tag}.log")
    probe = None if args.no_probe else ProbeClient(control)
    pid = server.proc.pid
    url = f"https://127.0.0.1:{tls_port}" if tls_port else server.url
    generators: list[Generator] = []
    try:
        if tls_port:
            wait_listening(tls_port, server)

        def measure(phase: str, cpu: float, snapshot: bool = True) -> Sample:
            taken = sample(phase, pid, cpu)
            if probe is not None:
                taken.probe = probe.ask({"cmd": "stats", "snapshot": snapshot})
            result.samples.append(taken)
            print(f"  {phase}: {describe(taken)}", flush=True)
            return taken

        rest = measure("rest", settle(pid, args.settle))

        count = min(n, args.generators or max(2, math.ceil(n / 1500)))
        started = time.monotonic()
        log_path = work / f"{tag}-generators.log"
        # Over TLS the clients trust the appliance's own CA (what /trust hands to browsers).
        node_env = {"NODE_EXTRA_CA_CERTS": str(data_dir / "tls" / "ca.pem")} if tls_port else {}
        with log_path.open("w") as log, environment(node_env):
            for g in range(count):
                config = {
                    "url": url,
                    "server": "appliance",
                    "deflate": not args.no_deflate,
                    "connect_concurrency": max(1, args.connect_concurrency // count),
                    "connect_timeout_ms": int(args.connect_timeout * 1000),
                    "clients": specs[g::count],
                }
                generators.append(Generator(node, config, log))
        for generator in generators:
            generator.send({"cmd": "connect"})
        for generator in generators:
            left = args.connect_deadline - (time.monotonic() - started)
            reply = generator.receive("connected", max(1.0, left))
            result.connected += len(reply["connected"])
            result.failed += int(reply["failed"])
            result.first_failure = result.first_failure or str(reply["first_failure"])
        result.connect_s = round(time.monotonic() - started, 1)
        print(
            f"  {result.connected} connected, {result.failed} failed in {result.connect_s} s",
            flush=True,
        )
        connected = measure("connected", settle(pid, args.settle))

        # Everyone leaves: each generator closes its sockets and exits.
        started = time.monotonic()
        for generator in generators:
            generator.stop()
        generators = []
        deadline = started + 120
        while open_files(pid) > rest.open_files + 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        result.leave_s = round(time.monotonic() - started, 1)
        if open_files(pid) > rest.open_files + 2:
            result.notes.append(f"{open_files(pid) - rest.open_files} files still open after 120 s")
        left = measure("left", settle(pid, args.leave_settle))
        if probe is not None:
            trim = probe.ask({"cmd": "trim"})
            result.trim_ms = round(1000 * float(trim["seconds"]), 1)
            measure("trimmed", 0.0, snapshot=False)
        result.peak_rss_kib = status_kib(pid, "VmHWM")
    finally:
        for generator in generators:
            generator.stop()
        server.stop()
    result.notes += server.log_notes()
    summarise(result, rest, connected, left)
    if args.tracemalloc and probe is not None:
        attribute(result, rest, connected, left)
    shutil.rmtree(data_dir, ignore_errors=True)
    return result


def wait_listening(port: int, server: ApplianceServer) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError("the server exited before its HTTPS listener came up")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise TimeoutError("the HTTPS listener did not come up in 30 s")


def describe(s: Sample) -> str:
    text = (
        f"web RSS {s.web_rss_kib / KIB:.1f} MiB, PSS {s.web_pss_kib / KIB:.1f} MiB;"
        f" with children RSS {s.tree_rss_kib / KIB:.1f}, PSS {s.tree_pss_kib / KIB:.1f} MiB;"
        f" {s.open_files} files; CPU {s.cpu_percent} %"
    )
    malloc = s.probe.get("malloc")
    if malloc:
        text += f"; malloc in use {malloc['in_use'] / MIB:.1f} MiB, free {malloc['free'] / MIB:.1f}"
    pymalloc = s.probe.get("pymalloc")
    if pymalloc:
        text += (
            f"; pymalloc arenas {pymalloc.get('arena_bytes', 0) / MIB:.1f} MiB,"
            f" blocks in use {pymalloc.get('blocks_in_use', 0) / MIB:.1f}"
        )
    return text


def summarise(result: RunResult, rest: Sample, connected: Sample, left: Sample) -> None:
    if result.connected == 0:
        result.notes.append("no client connected: nothing per socket")
        return
    n = result.connected
    result.rss_kib_per_socket = round((connected.web_rss_kib - rest.web_rss_kib) / n, 1)
    result.pss_kib_per_socket = round((connected.web_pss_kib - rest.web_pss_kib) / n, 1)
    result.tree_pss_kib_per_socket = round((connected.tree_pss_kib - rest.tree_pss_kib) / n, 1)
    result.kept_rss_kib = left.web_rss_kib - rest.web_rss_kib
    trimmed = next((s for s in result.samples if s.phase == "trimmed"), None)
    if trimmed is not None:
        result.kept_after_trim_kib = trimmed.web_rss_kib - rest.web_rss_kib
    if not rest.probe:
        return

    def diff(key: str, a: Sample, b: Sample) -> dict[str, int]:
        old, new = a.probe[key], b.probe[key]
        return {k: new.get(k, 0) - old.get(k, 0) for k in set(old) | set(new)}

    objects = diff("types", rest, connected)
    result.objects_per_socket = {
        k: round(v / n, 2) for k, v in sorted(objects.items(), key=lambda kv: -kv[1]) if v >= n / 2
    }
    tasks = diff("tasks", rest, connected)
    result.tasks_per_socket = {
        k: round(v / n, 2) for k, v in sorted(tasks.items(), key=lambda kv: -kv[1]) if v > 0
    }
    kept = diff("types", rest, left)
    result.objects_kept = {
        k: v for k, v in sorted(kept.items(), key=lambda kv: -kv[1]) if v >= max(20, n // 10)
    }
    if "traced" in rest.probe:
        traced = [s.probe["traced"]["current"] for s in (rest, connected, left)]
        result.traced_bytes_per_socket = round((traced[1] - traced[0]) / n)
        result.traced_kept_bytes = traced[2] - traced[0]


# -- tracemalloc: what was allocated where ------------------------------------------------------

STDLIB = os.path.dirname(os.__file__)
PLUMBING = ("/asyncio/", "/contextlib.py", "/functools.py", "/typing.py", "/weakref.py")


def is_library(filename: str) -> bool:
    """A frame of the appliance or of a third-party library (not the stdlib's)."""
    return "site-packages" in filename or filename.startswith(str(ROOT / "appliance"))


def short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/", STDLIB + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def component_of(filename: str) -> str:
    name = short(filename)
    if name.startswith("appliance/"):
        parts = name.split("/")
        return "/".join(parts[:3]) if parts[1] == "transport" else "/".join(parts[:2])
    if "site-packages" in filename:
        return name.split("/", 1)[0]
    return "stdlib " + name.split("/", 1)[0].removesuffix(".py")


def site_key(frames: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """The innermost frame (what was allocated) and the two nearest callers that are in the
    appliance or a library: the site, whatever stdlib plumbing lies between."""
    innermost = frames[0]
    callers = [f for f in frames[1:] if is_library(f[0]) and not any(p in f[0] for p in PLUMBING)]
    return (innermost, *callers[:2])


def describe_frame(frame: tuple[str, int]) -> str:
    filename, line = frame
    code = linecache.getline(filename, line).strip()
    code = code if len(code) <= 70 else code[:67] + "..."
    return f"{short(filename)}:{line}" + (f" `{code}`" if code else "")


def site_diffs(
    new_path: str, old_path: str, per: int, top: int
) -> tuple[list[Site], dict[str, float]]:
    import tracemalloc

    drop = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, __file__),
        tracemalloc.Filter(False, linecache.__file__),
    ]
    new = tracemalloc.Snapshot.load(new_path).filter_traces(drop)
    old = tracemalloc.Snapshot.load(old_path).filter_traces(drop)
    sizes: Counter[tuple[tuple[str, int], ...]] = Counter()
    counts: Counter[tuple[tuple[str, int], ...]] = Counter()
    components: Counter[str] = Counter()
    for stat in new.compare_to(old, "traceback"):
        frames = [(f.filename, f.lineno) for f in reversed(stat.traceback)]
        key = site_key(frames)
        sizes[key] += stat.size_diff
        counts[key] += stat.count_diff
        owner = next((f[0] for f in frames if is_library(f[0])), frames[0][0])
        components[owner if owner == "<unknown>" else component_of(owner)] += stat.size_diff
    per = max(per, 1)
    sites = [
        Site(
            round(size / per, 1),
            round(counts[key] / per, 2),
            component_of(next((f[0] for f in key if is_library(f[0])), key[0][0])),
            [describe_frame(f) for f in key],
        )
        for key, size in sizes.most_common(top)
        if size > 0
    ]
    by_component = {
        k: round(v / per, 1) for k, v in sorted(components.items(), key=lambda kv: -kv[1])
    }
    return sites, by_component


def attribute(result: RunResult, rest: Sample, connected: Sample, left: Sample) -> None:
    paths = [s.probe.get("snapshot") for s in (rest, connected, left)]
    if not all(paths):
        return
    print("  comparing tracemalloc snapshots ...", flush=True)
    n = max(result.connected, 1)
    result.sites, result.components = site_diffs(str(paths[1]), str(paths[0]), n, 200)
    result.kept_sites, _ = site_diffs(str(paths[2]), str(paths[0]), n, 12)
    for path in paths:
        Path(str(path)).unlink(missing_ok=True)


# -- report ------------------------------------------------------------------------------------


def mib(kib: int) -> str:
    return f"{kib / KIB:,.1f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def per_socket(group: str, key: str, new: Sample, old: Sample, n: int) -> float:
    """KiB per socket of a probe figure's change from `old` to `new`."""
    change = new.probe.get(group, {}).get(key, 0) - old.probe.get(group, {}).get(key, 0)
    return float(change) / max(n, 1) / KIB


def report(runs: list[RunResult]) -> str:
    parts = []
    rows = []
    for r in runs:
        by = {s.phase: s for s in r.samples}
        rest, conn, left = by["rest"], by["connected"], by["left"]
        trimmed = by.get("trimmed")
        rows.append(
            [
                f"{r.clients:,}",
                f"{r.connected:,} / {r.failed:,}",
                f"{r.connect_s:.0f}",
                f"{mib(rest.web_rss_kib)} / {mib(conn.web_rss_kib)} / {mib(left.web_rss_kib)}"
                + (f" / {mib(trimmed.web_rss_kib)}" if trimmed else ""),
                f"{mib(rest.web_pss_kib)} / {mib(conn.web_pss_kib)} / {mib(left.web_pss_kib)}",
                f"{mib(rest.tree_pss_kib)} / {mib(conn.tree_pss_kib)}",
                f"**{r.rss_kib_per_socket:.1f}** / {r.pss_kib_per_socket:.1f}",
                f"{mib(r.peak_rss_kib)}",
                f"{r.trim_ms:g}",
            ]
        )
    parts.append(
        table(
            [
                "clients",
                "connected / failed",
                "connect s",
                "web RSS MiB: rest / connected / left / trimmed",
                "web PSS MiB: rest / connected / left",
                "web + writer PSS MiB: rest / connected",
                "KiB per socket: RSS / PSS",
                "web peak RSS MiB",
                "malloc_trim ms",
            ],
            rows,
        )
    )
    for r in runs:
        by = {s.phase: s for s in r.samples}
        if not by["rest"].probe:
            continue
        n = max(r.connected, 1)
        heap_rows = []
        for s in r.samples:
            m, p = s.probe.get("malloc", {}), s.probe.get("pymalloc", {})
            traced = s.probe.get("traced", {}).get("current")
            heap_rows.append(
                [
                    s.phase,
                    mib(s.web_rss_kib),
                    mib(s.web_anon_kib),
                    f"{m.get('in_use', 0) / MIB:,.1f} / {m.get('free', 0) / MIB:,.1f}",
                    f"{m.get('mmapped', 0) / MIB:,.1f}",
                    f"{p.get('arena_bytes', 0) / MIB:,.1f} / {p.get('blocks_in_use', 0) / MIB:,.1f}"
                    if p
                    else "",
                    "" if traced is None else f"{traced / MIB:,.1f}",
                ]
            )
        title = f"**{r.clients:,} clients: where the web process's memory sits (MiB)**"
        if r.traced:
            title += (
                " (under tracemalloc: RSS and malloc include the traces and the snapshots,"
                " pymalloc's statistics are not available)"
            )
        parts.append(title)
        parts.append(
            table(
                [
                    "phase",
                    "RSS",
                    "anonymous",
                    "malloc heap: in use / free",
                    "malloc mmapped",
                    "pymalloc: arenas / blocks in use",
                    "tracemalloc traced",
                ],
                heap_rows,
            )
        )

        conn, rest = by["connected"], by["rest"]
        parts.append(
            "Per socket (KiB): RSS {:.1f}; malloc in use {:.1f}, malloc free {:.1f};"
            " pymalloc arenas {:.1f}, pymalloc blocks in use {:.1f}{}".format(
                r.rss_kib_per_socket,
                per_socket("malloc", "in_use", conn, rest, n),
                per_socket("malloc", "free", conn, rest, n),
                per_socket("pymalloc", "arena_bytes", conn, rest, n),
                per_socket("pymalloc", "blocks_in_use", conn, rest, n),
                f"; traced by tracemalloc {r.traced_bytes_per_socket / KIB:.1f}"
                if r.traced_bytes_per_socket
                else "",
            )
        )
        objects = [[k, f"{v:g}"] for k, v in list(r.objects_per_socket.items())[:20]]
        parts.append(
            table(["live objects per socket (the collector's, by type)", "count"], objects)
        )
        tasks = [[k, f"{v:g}"] for k, v in r.tasks_per_socket.items()]
        parts.append(table(["asyncio tasks per socket, by coroutine", "count"], tasks))
        if r.objects_kept:
            kept = [[k, f"{v:,}"] for k, v in list(r.objects_kept.items())[:12]]
            parts.append(table(["objects still there after everyone left", "count"], kept))
        if r.components:
            comps = [[k, f"{v:,.0f}"] for k, v in r.components.items() if abs(v) >= 16]
            parts.append(
                table(["tracemalloc: allocated by (first library frame)", "B/socket"], comps)
            )
        if r.sites:
            sites = [
                [f"{s.bytes_per_socket:,.0f}", f"{s.allocs_per_socket:g}", "<br>".join(s.frames)]
                for s in r.sites[:30]
            ]
            parts.append(table(["B/socket", "allocs/socket", "site (innermost first)"], sites))
        if r.kept_sites:
            kept_sites = [
                [f"{s.bytes_per_socket:,.1f}", f"{s.allocs_per_socket:g}", "<br>".join(s.frames)]
                for s in r.kept_sites
            ]
            parts.append(
                f"tracemalloc after everyone left: {r.traced_kept_bytes / KIB:,.0f} KiB more than"
                " at rest; the largest sites (per departed socket):"
            )
            parts.append(table(["B/socket", "allocs/socket", "site"], kept_sites))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=parse_counts, default=parse_counts("1000,3000"))
    parser.add_argument("--settle", type=float, default=10.0, help="s before each measurement")
    parser.add_argument(
        "--leave-settle",
        type=float,
        default=35.0,
        help="s after the last socket closed (engine.io's ping task holds a closed socket for"
        " up to ping_interval, 25 s; presence waits its grace, 5 s)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=10, help="handshakes in flight")
    parser.add_argument("--connect-timeout", type=float, default=60.0, help="per client, s")
    parser.add_argument("--connect-deadline", type=float, default=900.0, help="all clients, s")
    parser.add_argument("--generators", type=int, default=0, help="0: max(2, clients / 1500)")
    parser.add_argument("--no-deflate", action="store_true", help="clients offer no deflate")
    parser.add_argument("--tls", action="store_true", help="connect over wss:// (HTTPS listener)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES", help="0: off")
    parser.add_argument("--no-probe", action="store_true", help="nothing loaded into web")
    parser.add_argument("--no-service-env", action="store_true", help="without SERVICES' env")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="for web (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tmp-dir", type=Path, help="where the data dirs go (default: $TMPDIR)")
    args = parser.parse_args(argv)
    if args.tracemalloc and args.no_probe:
        parser.error("--tracemalloc needs the probe")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")

    node = find_node()
    most = max(args.clients)
    raise_fd_limit(most * 2 + 1000)
    started = time.monotonic()
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="socket-memory-", dir=args.tmp_dir) as tmp:
        work = Path(tmp)
        print(f"setting up {most} users in rooms of 6, a login each ...", flush=True)
        specs = prepare(work / "template", most)
        for n in args.clients:
            print(f"{n} clients ...", flush=True)
            runs.append(run_one(specs[:n], work / "template", work, node, args))
            print(f"  {runs[-1].rss_kib_per_socket} KiB per socket (RSS)", flush=True)
    print()
    print(report(runs))
    for run in runs:
        for note in [run.first_failure, *run.notes]:
            if note:
                print(f"{run.clients}: {note}")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        payload: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
        payload["runs"] = [asdict(r) for r in runs]
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
