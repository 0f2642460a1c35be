"""Smoke run of the fan-out benchmark (bench/fanout.py, issue #13), so that it cannot rot: the
appliance with FULL and NORMAL durability and the Node socket.io reference server, 30 clients in
rooms of 6, 3 s. The node side needs `npm ci --prefix bench/peers` (scripts/setup --dev)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "fanout.py"
SERVERS = {"appliance FULL", "appliance NORMAL", "Node socket.io 4"}


@pytest.mark.timeout(150)
def test_quick_run_measures_three_servers_without_losses(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = [sys.executable, str(BENCH), "--quick", "--json", str(out), "--tmp-dir", str(tmp_path)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    runs = {run["server"]: run for run in json.loads(out.read_text())["runs"]}
    assert set(runs) == SERVERS
    for name, run in runs.items():
        assert run["skipped"] == "", name
        assert run["clients"] == run["connected"] == 30, name
        assert run["failed"] == 0 and run["disconnects"] == 0, name
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"], name
        # Every client sent in the window and each message reached the 5 others in its room.
        assert run["sent"] >= 30 and run["expected"] == 5 * run["sent"], name
        assert run["dropped"] == 0 and run["received"] == run["expected"], name
        assert run["acked"] == run["sent"] and run["ack_errors"] == 0, name
        assert run["cpu"] > 0 and run["rss"] > 0 and run["generator_cpu"] > 0, name
    for name in ("appliance FULL", "appliance NORMAL"):
        # Acked means stored (warm-up messages included).
        assert runs[name]["stored"] >= runs[name]["acked"], name
        assert runs[name]["notes"] == [], name

    table = proc.stdout
    assert "| 30 |" in table
    for name in SERVERS:
        assert name in table
