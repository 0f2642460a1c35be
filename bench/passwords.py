"""Logins a small box can afford: argon2id parameter sets compared (docs/benchmarks.md,
"Password hashing").

For each parameter set a fresh child process hashes one password, then verifies it as logins do
(`PasswordService.verify`, at most `max_parallel` hashes at once, as in the web service) with
`--concurrency` logins in flight for `--seconds`. It reports logins a second, the latency of one
login (p50 / p99) and the child's peak RSS (`ru_maxrss`), and the same child's RSS before the
first hash, so the difference is what hashing costs in memory.

  .venv/bin/python bench/passwords.py                  # every set, 8 s each
  .venv/bin/python bench/passwords.py --seconds 2 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher, Type

from appliance.services.passwords import PASSWORD_PARAMETERS, PasswordService


@dataclass(frozen=True)
class ParameterSet:
    label: str
    time_cost: int
    memory_kib: int
    parallelism: int


SETS = (
    ParameterSet("before: argon2-cffi default (RFC 9106 low-memory)", 3, 65536, 4),
    ParameterSet("OWASP m=46 MiB, t=1, p=1", 1, 47104, 1),
    ParameterSet(
        "now: OWASP m=19 MiB, t=2, p=1",
        PASSWORD_PARAMETERS.time_cost,
        PASSWORD_PARAMETERS.memory_cost,
        PASSWORD_PARAMETERS.parallelism,
    ),
    ParameterSet("OWASP m=12 MiB, t=3, p=1", 3, 12288, 1),
    ParameterSet("OWASP m=7 MiB, t=5, p=1", 5, 7168, 1),
)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _measure(params: ParameterSet, seconds: float, concurrency: int) -> dict[str, Any]:
    hasher = PasswordHasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        type=Type.ID,
    )
    rss_before = _rss_kib()
    service = PasswordService(hasher)
    stored = await service.hash("correct horse battery")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def user() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            assert await service.verify(stored, "correct horse battery")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    single = []
    for _ in range(5):
        t0 = time.perf_counter()
        hasher.verify(stored, "correct horse battery")
        single.append(time.perf_counter() - t0)
    latencies.sort()
    return {
        **asdict(params),
        "logins_per_s": round(len(latencies) / elapsed, 1),
        "one_hash_ms": round(statistics.median(single) * 1000, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(params: ParameterSet, seconds: float, concurrency: int, out: Any) -> None:
    out.send(asyncio.run(_measure(params, seconds, concurrency)))


def run(seconds: float, concurrency: int) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    results = []
    for params in SETS:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(params, seconds, concurrency, child))
        proc.start()
        results.append(parent.recv())
        proc.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = run(args.seconds, args.concurrency)
    print(
        f"| parameters | logins/s ({args.concurrency} at once) | one hash | p50 / p99 |"
        " RSS before / peak |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['label']} | {r['logins_per_s']} | {r['one_hash_ms']} ms"
            f" | {r['p50_ms']} / {r['p99_ms']} ms"
            f" | {r['rss_before_mib']} / {r['peak_rss_mib']} MiB |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
