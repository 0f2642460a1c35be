"""Smoke run of bench/idle_memory.py (issue #13: the whole stack at rest), so that it cannot rot:
the box comes up under supervisord, every service is found and measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(150)
def test_idle_memory_measures_every_service(tmp_path: Path) -> None:
    out = tmp_path / "idle.json"
    argv = [sys.executable, "bench/idle_memory.py", "--settle", "0", "--json", str(out)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    processes = json.loads(out.read_text())["processes"]
    services = {p["service"] for p in processes}
    expected = {"supervisord", "web", "store (rclone)", "turn", "turn (coturn)", "recorder"}
    assert expected <= services, services
    assert all(p["pss_kib"] > 0 for p in processes)
    assert "**whole stack**" in proc.stdout
