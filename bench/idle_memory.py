"""Memory of the whole appliance at rest: `appliance up` on a fresh data dir, idle.

    .venv/bin/python bench/idle_memory.py [--settle 30] [--json out.json]

Starts every service under supervisord (web, store, turn, recorder) on loopback ports, waits until
/healthz reports them all up, lets the box sit idle for `--settle` seconds, then reads RSS and PSS
(/proc/<pid>/smaps_rollup) of every process in supervisord's tree, grouped by service. PSS shares
the pages that processes have in common (the Python runtime, libraries) among them, so the sum of
PSS is what the box costs; the sum of RSS counts shared pages once per process. Issue #13's target:
the whole stack idle under 120 MiB. Figures: docs/benchmarks.md ("Whole stack at rest").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import make_settings  # noqa: E402
from tests.turn_support import free_udp_tcp_port, turn_overrides  # noqa: E402

free_port = free_udp_tcp_port


@dataclass
class Proc:
    pid: int
    service: str
    command: str
    rss_kib: int
    pss_kib: int


def children(pid: int) -> list[int]:
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        kids = (task / "children").read_text().split()
        found.extend(int(k) for k in kids)
    return found


def tree(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children(pid))
    return out


def memory(pid: int) -> tuple[int, int]:
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def service_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "supervisord" in text:
        return "supervisord"
    if "turnserver" in text:
        return "turn (coturn)"
    if "rclone" in text:
        return "store (rclone)"
    if "writer_child" in text or "appliance.storage" in text:
        return "web (writer child)"
    for name in ("web", "store", "turn", "recorder"):
        if (cmdline and cmdline[-1] == name) or f" {name} " in f"{text} ":
            return name
    return "other: " + (Path(cmdline[0]).name if cmdline else "?")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:  # noqa: S310 - loopback
            body = json.loads(answer.read())
    except OSError:
        return False
    services = body.get("services", body)
    return all(
        isinstance(v, dict) and v.get("state") == "up"
        for k, v in services.items()
        if k in ("store", "turn", "recorder")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=30.0, help="idle seconds before reading")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with TemporaryDirectory(prefix="idle-memory-") as tmp:
        data = Path(tmp) / "data"
        web_port = free_port()
        make_settings(
            data,
            {
                "web": {"host": "127.0.0.1", "port": web_port, "https_port": free_port()},
                "turn": {**turn_overrides(allow_loopback_peers=False), "tls_port": free_port()},
                "storage": {"address": f"127.0.0.1:{free_port()}"},
                "recording": {"enabled": True},
            },
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--data-dir", str(data), "up"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{web_port}"
            deadline = time.monotonic() + 60
            while not healthy(url):
                if time.monotonic() > deadline or proc.poll() is not None:
                    print("the box did not come up within 60 s", file=sys.stderr)
                    return 1
                time.sleep(0.5)
            time.sleep(args.settle)  # at rest: nothing to await, the idle state is what is measured
            procs = []
            for pid in tree(proc.pid):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
                    rss, pss = memory(pid)
                except OSError:
                    continue
                procs.append(Proc(pid, service_of(cmdline), " ".join(cmdline)[:120], rss, pss))
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    groups: dict[str, list[Proc]] = {}
    for p in procs:
        groups.setdefault(p.service, []).append(p)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"idle {args.settle:.0f} s after every service was up\n")
    print("| service | processes | RSS MiB | PSS MiB |")
    print("|---|---|---|---|")
    for name, members in sorted(groups.items(), key=lambda kv: -sum(p.pss_kib for p in kv[1])):
        rss_mib = sum(p.rss_kib for p in members) / 1024
        pss_mib = sum(p.pss_kib for p in members) / 1024
        print(f"| {name} | {len(members)} | {rss_mib:.1f} | {pss_mib:.1f} |")
    total_rss = sum(p.rss_kib for p in procs) / 1024
    total_pss = sum(p.pss_kib for p in procs) / 1024
    print(f"| **whole stack** | {len(procs)} | {total_rss:.1f} | **{total_pss:.1f}** |")
    if args.json:
        args.json.write_text(
            json.dumps({"settle": args.settle, "processes": [asdict(p) for p in procs]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
