"""Memory of the whole appliance at rest: `appliance up` on a fresh data dir, idle.

    .venv/bin/python bench/idle_memory.py [--settle 30] [--direct] [--json out.json]

Starts every service under supervisord (web, store, turn, recorder) on loopback ports, waits until
/healthz reports them all up, lets the box sit idle for `--settle` seconds, then reads RSS and PSS
(/proc/<pid>/smaps_rollup) of every process in supervisord's tree, grouped by service (the turn
service's processes apart: supervisord's log splitter, the watcher, coturn). PSS shares the pages
that processes have in common (the Python runtime, libraries) among them, so the sum of PSS is what
the box costs; the sum of RSS counts shared pages once per process. The last row leaves out what
only supervisord's way of running has (supervisord, the log splitter); `--direct` starts each
service's own command instead, as the systemd units do, and measures that. Issue
#13's target: the whole stack idle under 120 MiB. Figures: docs/benchmarks.md ("Whole stack at
rest").
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


#: Processes that only `appliance up` has: under systemd there is no supervisord and no log
#: splitter (the journal takes every line), so the stack systemd runs is the total without them.
SUPERVISOR_ONLY = ("supervisord", "turn (log splitter)")


def service_of(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "supervisord" in text:
        return "supervisord"
    if "appliance.supervision.logsplit" in text:
        return "turn (log splitter)"
    if "appliance.adapters.coturn_process" in text:
        return "turn (watcher)"
    if cmdline and Path(cmdline[0]).name == "turnserver":
        return "turn (coturn)"
    if "rclone" in text:
        return "store (rclone)"
    if "writer_child" in text or "appliance.storage" in text:
        return "web (writer child)"
    for name in ("web", "store", "turn", "recorder"):
        if (cmdline and cmdline[-1] == name) or f" {name} " in f"{text} ":
            return name
    return "other: " + (Path(cmdline[0]).name if cmdline else "?")


def health(url: str) -> str | None:
    """None when web, store, turn and recorder are up; else what is not (for the error)."""
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:  # noqa: S310 - loopback
            body = json.loads(answer.read())
    except OSError as exc:
        return f"web: {exc}"
    services = body.get("services", body)
    down = {
        k: v.get("state") if isinstance(v, dict) else v
        for k, v in services.items()
        if k in ("store", "turn", "recorder")
        and not (isinstance(v, dict) and v.get("state") == "up")
    }
    return None if not down else str(down)


def _start(data: Path, direct: bool) -> list[subprocess.Popen[bytes]]:
    """`appliance up` (one supervisord tree), or with `direct` each service's own command as
    systemd starts it (its declared environment, no supervisord, no log splitter)."""
    base = [sys.executable, "-m", "appliance", "--data-dir", str(data)]
    # The database made once before the services start: each service migrates at its start, and
    # on a fresh database those migrations can collide (as an installed box has it ready).
    subprocess.run([*base, "init"], check=True, capture_output=True, timeout=60)
    commands: list[tuple[list[str], dict[str, str]]] = [([*base, "up"], {})]
    if direct:
        from appliance.supervision.services import SERVICES

        commands = [([*base, *spec.command], dict(spec.environment)) for spec in SERVICES]
    roots = []
    for argv, extra in commands:
        with (data.parent / f"{argv[-1]}.log").open("wb") as log:  # shown if it does not come up
            roots.append(
                subprocess.Popen(
                    argv,
                    env={**os.environ, **extra},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return roots


def _logs(data: Path) -> str:
    return "\n".join(
        f"--- {log.name}:\n" + log.read_text(errors="replace")[-1500:]
        for log in sorted(data.parent.glob("*.log"))
    )


def _stop(roots: list[subprocess.Popen[bytes]], signum: int) -> None:
    for proc in roots:
        proc.send_signal(signum)
    for proc in roots:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _measure(roots: list[subprocess.Popen[bytes]]) -> list[Proc]:
    procs = []
    for root in roots:
        for pid in tree(root.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
                rss, pss = memory(pid)
            except OSError:
                continue
            procs.append(Proc(pid, service_of(cmdline), " ".join(cmdline)[:120], rss, pss))
    return procs


def _mib(procs: list[Proc]) -> tuple[float, float]:
    return sum(p.rss_kib for p in procs) / 1024, sum(p.pss_kib for p in procs) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=30.0, help="idle seconds before reading")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="start each service's command on its own, as systemd does (no supervisord)",
    )
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
        roots = _start(data, args.direct)
        try:
            url = f"http://127.0.0.1:{web_port}"
            deadline = time.monotonic() + 60
            while (down := health(url)) is not None:
                if time.monotonic() > deadline or any(p.poll() is not None for p in roots):
                    exited = [p.returncode for p in roots if p.poll() is not None]
                    print(
                        f"the box did not come up within 60 s: {down}; exit statuses: {exited}\n"
                        + _logs(data),
                        file=sys.stderr,
                    )
                    return 1
                time.sleep(0.5)
            time.sleep(args.settle)  # at rest: nothing to await, the idle state is what is measured
            procs = _measure(roots)
        finally:
            _stop(roots, signal.SIGTERM if args.direct else signal.SIGINT)
    groups: dict[str, list[Proc]] = {}
    for p in procs:
        groups.setdefault(p.service, []).append(p)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    how = "each service on its own (as systemd)" if args.direct else "under supervisord"
    print(f"{how}, idle {args.settle:.0f} s after every service was up\n")
    print("| service | processes | RSS MiB | PSS MiB |")
    print("|---|---|---|---|")
    for name, members in sorted(groups.items(), key=lambda kv: -sum(p.pss_kib for p in kv[1])):
        rss_mib, pss_mib = _mib(members)
        print(f"| {name} | {len(members)} | {rss_mib:.1f} | {pss_mib:.1f} |")
    total_rss, total_pss = _mib(procs)
    print(f"| **whole stack** | {len(procs)} | {total_rss:.1f} | **{total_pss:.1f}** |")
    if not args.direct:
        bare = [p for p in procs if p.service not in SUPERVISOR_ONLY]
        bare_rss, bare_pss = _mib(bare)
        print(
            f"| without {' and '.join(SUPERVISOR_ONLY)} (as under systemd) | {len(bare)} "
            f"| {bare_rss:.1f} | {bare_pss:.1f} |"
        )
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        print(f"\nload average at the end (1, 5, 15 min): {' '.join(loadavg.read().split()[:3])}")
    if args.json:
        document = {"settle": args.settle, "direct": args.direct}
        document["processes"] = [asdict(p) for p in procs]
        args.json.write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
