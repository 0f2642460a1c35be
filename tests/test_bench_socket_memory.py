"""Smoke run of bench/socket_memory.py (issue #13: memory per idle socket), so that it cannot rot:
20 authenticated clients connect to the real web service and leave again, the probe inside the
web process answers, and tracemalloc attributes the growth to allocation sites. The clients are
socket.io-client under node (`npm ci --prefix bench/peers`, scripts/setup --dev)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "socket_memory.py"


@pytest.mark.timeout(150)
def test_tiny_run_measures_sockets_and_their_allocation_sites(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    argv = [sys.executable, str(BENCH), "--clients", "20", "--settle", "1", "--leave-settle", "2"]
    argv += ["--tracemalloc", "8", "--json", str(out), "--tmp-dir", str(tmp_path)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=130)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    (run,) = json.loads(out.read_text())["runs"]
    assert run["clients"] == run["connected"] == 20 and run["failed"] == 0
    assert run["notes"] == []
    phases = {s["phase"]: s for s in run["samples"]}
    assert list(phases) == ["rest", "connected", "left", "trimmed"]
    rest, connected, left = phases["rest"], phases["connected"], phases["left"]
    # One file per socket while connected; all closed after they left.
    assert connected["open_files"] >= rest["open_files"] + 20
    assert left["open_files"] <= rest["open_files"] + 2
    assert all(s["web_rss_kib"] > 0 and s["tree_pss_kib"] > 0 for s in run["samples"])
    # The probe answered from inside the web process, and saw one connection task per socket.
    assert connected["probe"]["malloc"]["in_use"] > 0
    assert run["tasks_per_socket"]["WebSocketsSansIOProtocol.run_asgi"] == 1
    assert run["traced_bytes_per_socket"] > 1000
    assert run["sites"] and run["components"]
    assert any("uvicorn" in frame for site in run["sites"] for frame in site["frames"])

    report = proc.stdout
    assert "| 20 | 20 / 0 |" in report
    assert "B/socket" in report
