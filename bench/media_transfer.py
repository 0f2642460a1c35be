"""Upload and download throughput of a 50 MiB file through the pre-signed URLs, against a direct
file copy on the same disk (see docs/benchmarks.md, "Media transfer").

Real processes, all on 127.0.0.1: the managed store (`appliance store`, which execs
`rclone serve s3`) and the web service (`appliance web`, uvicorn on uvloop), both over one fresh
data dir with `APPLIANCE_STORAGE__ADDRESS` on a free port. Two users are made with
`appliance user add`, log in over HTTP and share a direct room; alice's python-socketio client
completes uploads. Per round, in an order that rotates from round to round:

  proxied        POST /api/media/uploads -> PUT the file (streamed from disk, aiohttp) to the
                 returned URL on the web origin, which store_proxy.py passes to the store
                 -> media:uploaded over Socket.IO -> GET /api/media/{id} -> 302 -> stream the
                 pre-signed GET to /dev/null. Only the PUT and the GET are timed.
  direct         the same flow, but the PUT and the GET are re-signed (appliance.adapters.sigv4,
                 the data dir's storage credentials, same signed headers and response-* query)
                 for the store's own port: the same store without the proxy.
  copy           shutil.copyfile of the same file into <data-dir>/objects (same disk).
  copy+fsync     the same, then fsync of the copy.
  rclone-copyto  `rclone copyto` of the file into the served directory (a fresh process each
                 time: includes rclone's start-up and its check of the copy's md5).

Around each timed transfer: the dirty pages of the previous one are flushed first (os.sync,
untimed); the CPU time of the web process and the store (the sum of their threads'
/proc/PID/task/TID/schedstat, in ns) and of this client is read before and after, with the
web process's kernel share and minor page faults (/proc/PID/stat); the web process's and the
store's peak RSS are reset (`echo 5 > /proc/PID/clear_refs`) before and read (VmHWM) after,
so the peak is that transfer's own (logins run argon2, whose 64 MiB would hide it otherwise).

With --variants, each round also times the proxied flow (the API calls on `appliance web`, the
PUT and the GET re-signed for the variant's port) against variants of the proxy: StoreProxy
alone with its own knobs changed, or a second `appliance web` with its environment changed
(bench/media_proxy_variant.py lists them). With --profile, a last phase runs py-spy
(`py-spy record --nonblocking`, raw collapsed stacks) on `appliance web` during a few proxied
transfers and prints where its samples fall; those transfers are not in the table.

Run from the repository root:

  .venv/bin/python bench/media_transfer.py                 # 5 rounds of the 5 paths, ~30 s
  pip install --target /tmp/bench-httptools httptools      # only for the *-httptools variants
  .venv/bin/python bench/media_transfer.py --profile --variants proxy-as-shipped proxy-1m \
      proxy-4m-any web-malloc web-httptools web-malloc-httptools \
      --variant-path /tmp/bench-httptools --json out.json  # ~1 minute
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.supervision.services import SERVICES  # noqa: E402
from bench.media_proxy_variant import VARIANTS  # noqa: E402

MIB = 1024 * 1024
CTYPE = "video/mp4"
PASSWORD = "bench password 1234"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BIN = Path(sys.executable).parent
APPLIANCE = BIN / "appliance"
RCLONE = BIN / "rclone"
VARIANT_SCRIPT = Path(__file__).with_name("media_proxy_variant.py")
PATHS = ["proxied", "direct", "copy", "copy+fsync", "rclone-copyto"]
CLIENT_CHUNK = MIB  # the client reads the file and drains the download in 1 MiB pieces
TRANSFER_TIMEOUT = 60.0


# ---------------------------------------------------------------------------------------------
# /proc
# ---------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds of PID's threads: the sum of their /proc/PID/task/TID/schedstat run times
    (nanoseconds; /proc/PID/stat counts in 10 ms ticks, too coarse for 50-100 ms). Threads that
    exited are not counted: the web process's and rclone's live for the whole run."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, IndexError, ValueError):
                continue  # the thread is gone
    except OSError:
        total = 0
    if total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime, all threads


def proc_stat(pid: int) -> tuple[float, int]:
    """Kernel-side CPU seconds of PID (all threads; 10 ms ticks) and its minor page faults."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLK_TCK, int(fields[7])


def proc_mib(pid: int, key: str) -> float:
    """A kB field of /proc/PID/status (VmRSS, VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class Transfer:
    path: str
    direction: str  # "up" (PUT, copy) or "down" (GET)
    round: int
    seconds: float
    size: int
    web_cpu: float = 0.0  # seconds of CPU, web process, during the transfer
    store_cpu: float = 0.0
    client_cpu: float = 0.0  # this process (or the rclone child for "rclone-copyto")
    web_sys: float = 0.0  # of web_cpu, in the kernel (/proc/PID/stat stime, 10 ms ticks)
    web_faults: int = 0  # minor page faults of the web process during the transfer
    web_rss: float = 0.0  # MiB, RSS right before the transfer
    web_peak: float = 0.0  # MiB, VmHWM after it (reset before)
    store_rss: float = 0.0
    store_peak: float = 0.0
    etag_md5: bool = False  # the store's ETag was there and was the file's md5

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds


class Meter:
    """CPU and peak RSS of the web process, the store and this client around one transfer."""

    def __init__(self, web_pid: int, store_pid: int) -> None:
        self.main_web = self.web = web_pid
        self.store = store_pid
        self.peaks_reset = True

    def start(self, web_pid: int | None = None) -> dict[str, float]:
        self.web = web_pid or self.main_web
        os.sync()  # the previous transfer's dirty pages are not this one's cost
        for pid in (self.web, self.store):
            self.peaks_reset &= reset_peak(pid)
        return {
            "web_cpu": proc_cpu(self.web),
            "web_sys": proc_stat(self.web)[0],
            "web_faults": proc_stat(self.web)[1],
            "store_cpu": proc_cpu(self.store),
            "client_cpu": time.process_time(),
            "web_rss": proc_mib(self.web, "VmRSS"),
            "store_rss": proc_mib(self.store, "VmRSS"),
            "t": time.perf_counter(),
        }

    def stop(
        self, before: dict[str, float], path: str, direction: str, round_no: int, size: int
    ) -> Transfer:
        elapsed = time.perf_counter() - before["t"]
        return Transfer(
            path,
            direction,
            round_no,
            elapsed,
            size,
            web_cpu=proc_cpu(self.web) - before["web_cpu"],
            web_sys=proc_stat(self.web)[0] - before["web_sys"],
            web_faults=int(proc_stat(self.web)[1] - before["web_faults"]),
            store_cpu=proc_cpu(self.store) - before["store_cpu"],
            client_cpu=time.process_time() - before["client_cpu"],
            web_rss=before["web_rss"],
            web_peak=proc_mib(self.web, "VmHWM"),
            store_rss=before["store_rss"],
            store_peak=proc_mib(self.store, "VmHWM"),
        )


# ---------------------------------------------------------------------------------------------
# The appliance: store + web as real processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up (code {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not listen on {port} in {timeout:.0f} s") from None
            time.sleep(0.05)


class Appliance:
    def __init__(self, work: Path) -> None:
        self.data_dir = work / "data"
        self.store_port = free_port()
        self.web_port = free_port()
        self.env = dict(os.environ, APPLIANCE_STORAGE__ADDRESS=f"127.0.0.1:{self.store_port}")
        self.logs = work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.user_ids: dict[str, int] = {}
        self.variants: dict[str, tuple[int, int]] = {}  # name -> (port, pid)

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def store_url(self) -> str:
        return f"http://127.0.0.1:{self.store_port}"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(APPLIANCE), "--data-dir", str(self.data_dir), *args],
            input=stdin,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"appliance {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        # A declared service gets the environment supervisord and systemd give it.
        declared = {spec.name: dict(spec.environment) for spec in SERVICES}
        with (self.logs / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [str(APPLIANCE), "--data-dir", str(self.data_dir), *args],
                env={**self.env, **declared.get(name, {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        self.cli("init")
        for name in ("alice", "bob"):
            out = self.cli("user", "add", name, stdin=PASSWORD + "\n")
            self.user_ids[name] = int(out.rsplit("(id ", 1)[1].split(")")[0])
        wait_port(self.store_port, self.spawn("store", "store"), "the store")
        web = self.spawn("web", "web", "--host", "127.0.0.1", "--port", str(self.web_port))
        wait_port(self.web_port, web, "the web service")

    def start_variant(self, name: str, extra_path: str) -> int:
        """A proxy variant (bench/media_proxy_variant.py) on a free port: StoreProxy alone, or
        a second `appliance web` with its environment changed."""
        variant = VARIANTS[name]
        port = free_port()
        env = dict(self.env, **dict(variant.env))
        if variant.httptools:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
        if variant.web:
            argv = [str(APPLIANCE), "--data-dir", str(self.data_dir), "web"]
            argv += ["--host", "127.0.0.1", "--port", str(port)]
        else:
            argv = [sys.executable, str(VARIANT_SCRIPT), str(self.data_dir), str(port), name]
        with (self.logs / f"variant-{len(self.variants)}.log").open("wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[f"variant {name}"] = proc
        wait_port(port, proc, f"proxy variant {name}")
        self.variants[name] = (port, proc.pid)
        return port

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self, name: str, lines: int = 5) -> list[str]:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return []
        return [line for line in path.read_text(errors="replace").splitlines() if line][-lines:]


# ---------------------------------------------------------------------------------------------
# The client side
# ---------------------------------------------------------------------------------------------


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file in 1 MiB pieces (reads from the page cache: no thread hop needed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, CLIENT_CHUNK):
            yield chunk
    finally:
        os.close(fd)


class Client:
    def __init__(self, app: Appliance, src: Path, md5: str, meter: Meter) -> None:
        from appliance.adapters.sigv4 import Credentials
        from appliance.config import load

        self.app = app
        self.src = src
        self.size = src.stat().st_size
        self.md5 = md5
        self.meter = meter
        config = load(app.data_dir).config.storage
        self.bucket = config.bucket
        self.credentials = Credentials(
            config.access_key, config.secret_key.get_secret_value(), config.region
        )
        self.http: Any = None
        self.sio: Any = None
        self.tokens: dict[str, str] = {}
        self.room = 0
        self.devnull = os.open(os.devnull, os.O_WRONLY)

    async def __aenter__(self) -> Client:
        import aiohttp
        import socketio

        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=TRANSFER_TIMEOUT, sock_connect=5),
            read_bufsize=CLIENT_CHUNK,
        )
        await self.wait_healthy()
        for name in ("alice", "bob"):
            async with self.http.post(
                self.app.web_url + "/api/auth/login",
                json={"username": name, "password": PASSWORD},
            ) as response:
                response.raise_for_status()
                self.tokens[name] = (await response.json())["access_token"]
        body = await self.api(
            "POST", "/api/rooms/direct", "alice", json={"user_id": self.app.user_ids["bob"]}
        )
        self.room = int(body["room"]["id"])
        self.sio = socketio.AsyncClient(reconnection=False)
        await self.sio.connect(
            self.app.web_url,
            auth={"token": self.tokens["alice"]},
            transports=["websocket"],
            wait_timeout=10,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.sio is not None:
            await self.sio.disconnect()
        if self.http is not None:
            await self.http.close()
        os.close(self.devnull)

    async def wait_healthy(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                async with self.http.get(self.app.web_url + "/healthz") as response:
                    if response.status == 200:
                        body = await response.json()
                        if body["services"]["store"]["state"] == "up":
                            return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the web service did not report the store up in 20 s")
            await asyncio.sleep(0.1)

    async def api(self, method: str, path: str, who: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kwargs.pop("headers", {})}
        async with self.http.request(
            method, self.app.web_url + path, headers=headers, **kwargs
        ) as response:
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
            if response.status == 302:
                return response.headers["Location"]
            return await response.json()

    # -- the media flow ----------------------------------------------------------------------

    async def media(self, path: str, round_no: int) -> list[Transfer]:
        """One upload and one download through the pre-signed URLs; `direct` re-signs both
        for the store's own port, `proxy: VARIANT` for that variant's port."""
        target, web_pid = "", None
        if path == "direct":
            target = self.app.store_url
        elif path.startswith("proxy: "):
            port, web_pid = self.app.variants[path.removeprefix("proxy: ")]
            target = f"http://127.0.0.1:{port}"
        asked = await self.api(
            "POST",
            "/api/media/uploads",
            "alice",
            json={
                "room_id": self.room,
                "filename": f"bench-{round_no}.mp4",
                "content_type": CTYPE,
                "size": self.size,
            },
        )
        url = asked["upload"]["url"]
        headers = asked["upload"]["headers"]
        if target:
            url = self.resign("PUT", target, url, headers=headers)
        elif not url.startswith(self.app.web_url + "/"):
            raise RuntimeError(f"upload URL not on the web origin: {url}")
        up = await self.put(url, headers, path, round_no, web_pid)
        await self.uploaded(asked["media_id"])
        location = await self.api(
            "GET", f"/api/media/{asked['media_id']}", "alice", allow_redirects=False
        )
        if target:
            query = dict(parse_qsl(urlsplit(location).query))
            location = self.resign(
                "GET",
                target,
                location,
                query={k: v for k, v in query.items() if k.startswith("response-")},
            )
        down = await self.get(location, path, round_no, web_pid)
        # Untimed: drop the object from the served folder so the run's disk use stays small.
        key = unquote(urlsplit(url).path).removeprefix(f"/{self.bucket}/")
        (self.app.data_dir / "objects" / self.bucket / key).unlink(missing_ok=True)
        return [up, down]

    async def uploaded(self, media_id: str) -> None:
        """media:uploaded; media events are rate limited (1/s, burst 10 by default): a refusal
        says how long to wait, and the wait is outside every timed transfer."""
        for _ in range(20):
            ack = await self.sio.call("media:uploaded", {"media_id": media_id}, timeout=30)
            error = ack.get("error") or {}
            if error.get("code") != "rate_limited":
                break
            await asyncio.sleep(float(error.get("retry_after", 1.0)) + 0.05)
        if not ack.get("ok", "message" in ack):
            raise RuntimeError(f"media:uploaded refused: {ack}")

    def resign(self, method: str, base_url: str, url: str, **kwargs: Any) -> str:
        from appliance.adapters.sigv4 import presign

        return presign(
            self.credentials,
            method,
            base_url,
            unquote(urlsplit(url).path),
            expires=300,
            **kwargs,
        )

    async def put(
        self, url: str, headers: dict[str, str], path: str, round_no: int, web_pid: int | None
    ) -> Transfer:
        before = self.meter.start(web_pid)
        async with self.http.put(url, data=file_chunks(self.src), headers=headers) as response:
            await response.read()
            status, etag = response.status, response.headers.get("ETag", "")
        result = self.meter.stop(before, path, "up", round_no, self.size)
        if status != 200:
            raise RuntimeError(f"PUT {path}: HTTP {status}")
        if etag.strip('"') not in ("", self.md5):
            raise RuntimeError(f"PUT {path}: ETag {etag} is not the file's md5 {self.md5}")
        result.etag_md5 = bool(etag)
        return result

    async def get(self, url: str, path: str, round_no: int, web_pid: int | None) -> Transfer:
        received = 0
        before = self.meter.start(web_pid)
        async with self.http.get(url) as response:
            status, etag = response.status, response.headers.get("ETag", "")
            async for chunk in response.content.iter_chunked(CLIENT_CHUNK):
                os.write(self.devnull, chunk)
                received += len(chunk)
        result = self.meter.stop(before, path, "down", round_no, received)
        if status != 200 or received != self.size:
            raise RuntimeError(f"GET {path}: HTTP {status}, {received} of {self.size} bytes")
        if etag.strip('"') not in ("", self.md5):
            raise RuntimeError(f"GET {path}: ETag {etag} is not the file's md5 {self.md5}")
        result.etag_md5 = bool(etag)
        return result

    # -- the references ----------------------------------------------------------------------

    def copy(self, path: str, round_no: int) -> Transfer:
        dst = self.app.data_dir / "objects" / f"bench-copy-{round_no}"
        if path == "rclone-copyto":
            env = dict(os.environ, RCLONE_CONFIG=os.devnull)
            cpu = children_cpu()
            before = self.meter.start()
            subprocess.run(
                [str(RCLONE), "copyto", str(self.src), str(dst)],
                env=env,
                check=True,
                capture_output=True,
                timeout=TRANSFER_TIMEOUT,
            )
            result = self.meter.stop(before, path, "up", round_no, self.size)
            result.client_cpu = children_cpu() - cpu
        else:
            before = self.meter.start()
            shutil.copyfile(self.src, dst)
            if path == "copy+fsync":
                fd = os.open(dst, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            result = self.meter.stop(before, path, "up", round_no, self.size)
        if dst.stat().st_size != self.size:
            raise RuntimeError(f"{path}: copy has {dst.stat().st_size} bytes")
        dst.unlink()
        return result


def rclone_startup() -> float:
    """Seconds for `rclone version`: the start-up part of every `rclone copyto`."""
    started = time.perf_counter()
    subprocess.run([str(RCLONE), "version"], check=True, capture_output=True, timeout=30)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------------------------


def frame_name(frame: str) -> str:
    """`function (path/to/file.py:123)` -> `function (file.py)`; native frames unchanged."""
    if " (" in frame and frame.endswith(")"):
        name, where = frame[:-1].split(" (", 1)
        where = where.rsplit(":", 1)[0]
        return f"{name} ({where.rsplit('/', 1)[-1]})"
    return frame


def summarise_profile(raw: Path, top: int = 18) -> list[str]:
    """Leaf (self) and inclusive sample shares from py-spy's raw collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    if not total:
        return ["py-spy recorded no samples"]
    lines = [f"{total} samples (non-idle) of the web process"]
    lines.append("self (leaf frame):")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top * 2)]
    return lines


async def profile_phase(
    client: Client, web_pid: int, work: Path, count: int, native: bool
) -> list[str]:
    raw = work / "pyspy-web.txt"
    # --native needs the process paused for each sample; without it py-spy reads it running.
    mode = ["--native"] if native else ["--nonblocking"]
    spy = await asyncio.create_subprocess_exec(
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(web_pid),
        "--rate",
        "250",
        *mode,
        "--format",
        "raw",
        "--output",
        str(raw),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # let py-spy attach
    started = time.perf_counter()
    try:
        for i in range(count):
            done = await client.media("proxied", 1000 + i)
            print(
                "  profiled: "
                + ", ".join(f"{t.direction} {t.mib_s:.0f} MiB/s (py-spy attached)" for t in done),
                flush=True,
            )
    finally:
        if spy.returncode is None:
            spy.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(spy.communicate(), timeout=30)
    if not raw.exists():
        return [f"py-spy wrote nothing: {err.decode(errors='replace').strip()[-300:]}"]
    window = time.perf_counter() - started
    print(f"  py-spy raw stacks: {raw}", flush=True)
    return [f"profile window {window:.1f} s at 250 Hz", *summarise_profile(raw)]


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


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


def pick(results: list[Transfer], path: str, direction: str) -> list[Transfer]:
    return [t for t in results if t.path == path and t.direction == direction]


def rate_cell(ts: list[Transfer]) -> str:
    if not ts:
        return "-"
    rates = [t.mib_s for t in ts]
    cell = f"{median(rates):.0f}"
    return cell + (f" ({min(rates):.0f}-{max(rates):.0f})" if len(rates) > 1 else "")


def ms_cell(ts: list[Transfer], get: Callable[[Transfer], float]) -> str:
    return f"{median([get(t) for t in ts]) * 1000:.0f}" if ts else "-"


def peak_cell(ts: list[Transfer], who: str) -> str:
    if not ts:
        return "-"
    grow = [(t.web_peak - t.web_rss) if who == "web" else (t.store_peak - t.store_rss) for t in ts]
    return f"+{max(grow):.1f}"


def summary(results: list[Transfer], paths: list[str]) -> str:
    header = [
        "path",
        "dir",
        "MiB/s p50 (min-max)",
        "wall ms p50",
        "web CPU ms",
        "web page faults",
        "store CPU ms",
        "client CPU ms",
        "web peak RSS growth MiB (max)",
        "store peak RSS growth MiB (max)",
    ]
    rows = []
    for path in paths:
        for direction in ("up", "down"):
            ts = pick(results, path, direction)
            if not ts:
                continue
            rows.append(
                [
                    path,
                    {"up": "upload", "down": "download"}[direction],
                    rate_cell(ts),
                    ms_cell(ts, lambda t: t.seconds),
                    ms_cell(ts, lambda t: t.web_cpu),
                    f"{median([t.web_faults for t in ts]):.0f}",
                    ms_cell(ts, lambda t: t.store_cpu),
                    ms_cell(ts, lambda t: t.client_cpu),
                    peak_cell(ts, "web"),
                    peak_cell(ts, "store"),
                ]
            )
    return markdown_table(header, rows)


def ratios(results: list[Transfer], paths: list[str]) -> list[str]:
    """Per-round ratios (same round, so the same neighbours), then their median."""
    lines = []
    pairs = [("proxied", "direct"), ("proxied", "copy"), ("direct", "copy")]
    pairs += [(p, "direct") for p in paths if p.startswith("proxy: ")]
    pairs += [(p, "proxied") for p in paths if p.startswith("proxy: ")]
    for direction in ("up", "down"):
        for a, b in pairs:
            if direction == "down" and b == "copy":
                continue
            by_round = {t.round: t.mib_s for t in pick(results, b, direction)}
            values = [
                t.mib_s / by_round[t.round]
                for t in pick(results, a, direction)
                if t.round in by_round
            ]
            if values:
                lines.append(
                    f"{direction:>4} throughput {a}/{b}: {median(values):.2f} "
                    f"(rounds: {', '.join(f'{v:.2f}' for v in values)})"
                )
    for path in ["proxied", *(p for p in paths if p.startswith("proxy: "))]:
        for direction in ("up", "down"):
            proxied = pick(results, path, direction)
            direct = pick(results, "direct", direction)
            if proxied and direct:
                extra = median([t.web_cpu for t in proxied]) - median([t.web_cpu for t in direct])
                total_p = median([t.web_cpu + t.store_cpu + t.client_cpu for t in proxied])
                total_d = median([t.web_cpu + t.store_cpu + t.client_cpu for t in direct])
                size = proxied[0].size / MIB
                lines.append(
                    f"{direction:>4} {path}: web CPU added {extra * 1000:.0f} ms per "
                    f"{size:.0f} MiB = {extra * 1000 / size:.2f} ms/MiB; CPU of web+store+client "
                    f"{total_p * 1000:.0f} ms vs {total_d * 1000:.0f} ms direct"
                )
    return lines


def per_transfer(results: list[Transfer]) -> str:
    rows = [
        [
            str(t.round),
            t.path,
            t.direction,
            f"{t.mib_s:.0f}",
            f"{t.seconds * 1000:.0f}",
            f"{t.web_cpu * 1000:.0f}",
            f"{t.web_sys * 1000:.0f}",
            str(t.web_faults),
            f"{t.store_cpu * 1000:.0f}",
            f"{t.client_cpu * 1000:.0f}",
            f"{t.web_rss:.1f}",
            f"{t.web_peak:.1f}",
            f"{t.store_rss:.1f}",
            f"{t.store_peak:.1f}",
        ]
        for t in results
    ]
    header = [
        "round",
        "path",
        "dir",
        "MiB/s",
        "ms",
        "web CPU ms",
        "of which kernel",
        "web page faults",
        "store CPU ms",
        "client CPU ms",
        "web RSS",
        "web peak",
        "store RSS",
        "store peak",
    ]
    return markdown_table(header, rows)


def disk_of(path: Path) -> str:
    """The block device and file system under `path`, from /proc/self/mountinfo and /sys."""
    dev = os.stat(path).st_dev
    major, minor = os.major(dev), os.minor(dev)
    fstype = source = "?"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        parts = line.split()
        if parts[2] == f"{major}:{minor}":
            after = parts[parts.index("-") + 1 :]
            fstype, source = after[0], after[1]
            break
    block = Path(f"/sys/dev/block/{major}:{minor}")
    info = [f"{source} ({fstype})"]
    if block.exists():
        name = block.resolve().name
        queue = Path(f"/sys/block/{name}/queue")
        driver = Path(f"/sys/block/{name}/device/driver")
        size = int(Path(f"/sys/block/{name}/size").read_text()) * 512
        info.append(f"{name}: {size / 1e9:.0f} GB")
        if driver.exists():
            info.append(f"driver {driver.resolve().name}")
        for key in ("rotational", "scheduler", "write_cache"):
            if (queue / key).exists():
                info.append(f"{key} {(queue / key).read_text().strip()}")
    return ", ".join(info)


def machine(work: Path) -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    rclone = subprocess.run(
        [str(RCLONE), "version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()[0]
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    libs = ["uvicorn", "uvloop", "h11", "httptools", "aiohttp", "python-socketio", "quart"]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rclone": rclone,
        "disk": disk_of(work),
        "loadavg": loadavg(),
        **{lib: version(lib) for lib in libs},
    }


def version(lib: str) -> str:
    try:
        return metadata.version(lib)
    except metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path, info: dict[str, str]) -> int:
    src = work / "source.bin"
    md5 = hashlib.md5()  # noqa: S324 - compared with the store's ETag, not for security
    with src.open("wb") as out:
        for _ in range(args.size_mib):
            chunk = os.urandom(MIB)
            md5.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    app = Appliance(work)
    results: list[Transfer] = []
    paths = list(args.paths)
    errors: list[str] = []
    startups: list[float] = []
    profile: list[str] = []
    began = time.monotonic()
    try:
        await asyncio.to_thread(app.start)
        web_pid, store_pid = app.procs["web"].pid, app.procs["store"].pid
        for name in args.variants:
            await asyncio.to_thread(app.start_variant, name, args.variant_path)
        paths = args.paths + [f"proxy: {name}" for name in args.variants]
        meter = Meter(web_pid, store_pid)
        async with Client(app, src, md5.hexdigest(), meter) as client:
            # Warm-up, untimed: the first connection to the store, imports, page cache.
            await client.media("proxied", 0)
            await client.media("direct", 0)
            for name in args.variants:
                await client.media(f"proxy: {name}", 0)
            for round_no in range(1, args.rounds + 1):
                if time.monotonic() - began > args.budget:
                    errors.append(f"budget of {args.budget:.0f} s used up after {round_no - 1}")
                    break
                shift = (round_no - 1) % len(paths)
                order = paths[shift:] + paths[:shift]
                cells: list[str] = []
                for path in order:
                    try:
                        async with asyncio.timeout(2 * TRANSFER_TIMEOUT):
                            if path in ("proxied", "direct") or path.startswith("proxy: "):
                                done = await client.media(path, round_no)
                            else:
                                done = [await asyncio.to_thread(client.copy, path, round_no)]
                    except Exception as exc:  # one failure must not sink the other paths
                        errors.append(f"round {round_no} {path}: {type(exc).__name__}: {exc}")
                        continue
                    results += done
                    cells.append(f"{path} " + "/".join(f"{t.mib_s:.0f}" for t in done))
                if "rclone-copyto" in args.paths:
                    startups.append(await asyncio.to_thread(rclone_startup))
                print(f"round {round_no} (MiB/s up[/down]): " + ", ".join(cells), flush=True)
            if args.profile:
                print("profile phase:", flush=True)
                profile = await profile_phase(
                    client, web_pid, work, args.profile_transfers, args.profile_native
                )
        if not meter.peaks_reset:
            errors.append("could not reset VmHWM (clear_refs): peaks are whole-process peaks")
    finally:
        await asyncio.to_thread(app.stop)
        for name in ["web", "store", *(f"variant-{i}" for i in range(len(args.variants)))]:
            for line in app.log_tail(name):
                if "Traceback" in line or "ERROR" in line or "error" in line.lower():
                    print(f"  {name} log: {line[:240]}", flush=True)

    print()
    print(per_transfer(results))
    print()
    print(f"{args.size_mib} MiB file, {args.rounds} rounds; medians over rounds")
    print()
    print(summary(results, paths))
    print()
    for line in ratios(results, paths):
        print(line)
    media = [t for t in results if t.path not in ("copy", "copy+fsync", "rclone-copyto")]
    print(
        f"store ETag = the file's md5 on {sum(t.etag_md5 for t in media)} of {len(media)} "
        "PUTs and GETs (and no other ETag seen)"
    )
    if startups:
        print(f"rclone start-up (`rclone version`) p50: {median(startups) * 1000:.0f} ms")
    for line in profile:
        print(line)
    for error in errors:
        print(f"ERROR: {error}")
    print(
        f"\nwall time {time.monotonic() - began:.0f} s; load average at start {info['loadavg']}, "
        f"at end {loadavg()}",
        flush=True,
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "results": [asdict(t) | {"mib_s": t.mib_s} for t in results],
                    "rclone_startup_s": startups,
                    "profile": profile,
                    "errors": errors,
                },
                indent=2,
            )
        )
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=50, help="file size (max 100)")
    parser.add_argument("--paths", nargs="+", default=PATHS, choices=PATHS)
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        choices=list(VARIANTS),
        metavar="VARIANT",
        help="also time these proxy variants (bench/media_proxy_variant.py): "
        + "; ".join(f"{name}: {v.help}" for name, v in VARIANTS.items()),
    )
    parser.add_argument(
        "--variant-path",
        default="",
        help="a folder with httptools in it (`pip install --target DIR httptools`), for the "
        "*-httptools variants: prepended to their PYTHONPATH",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the web process after")
    parser.add_argument(
        "--profile-native", action="store_true", help="py-spy --native (pauses the process)"
    )
    parser.add_argument("--profile-transfers", type=int, default=3, help="proxied round trips")
    parser.add_argument("--work-dir", type=Path, help="where data dir and file go (default /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--budget", type=float, default=240.0, help="stop starting rounds after")
    parser.add_argument("--json", type=Path, help="also write raw results and machine info here")
    args = parser.parse_args(argv)
    if not 1 <= args.size_mib <= 100:
        parser.error("--size-mib must be 1..100 (storage.max_upload_size is 100 MiB)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for name in args.variants:
        if VARIANTS[name].httptools and not (Path(args.variant_path) / "httptools").is_dir():
            parser.error(f"{name} needs --variant-path DIR with httptools in it")

    work = Path(tempfile.mkdtemp(prefix="media-bench-", dir=args.work_dir))
    try:
        info = machine(work)
        print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(run(args, work, info))
    finally:
        if args.keep:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
