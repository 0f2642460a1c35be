"""Smoke run of bench/idle_memory.py (issue #13: the whole stack at rest), so that it cannot rot:
the box comes up under supervisord (or each service on its own, as systemd runs them), every
service is found and measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(150)
@pytest.mark.parametrize("direct", [False, True], ids=["supervisord", "direct"])
def test_idle_memory_measures_every_service(tmp_path: Path, direct: bool) -> None:
    out = tmp_path / "idle.json"
    argv = [sys.executable, "bench/idle_memory.py", "--settle", "0", "--json", str(out)]
    argv += ["--direct"] if direct else []
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    processes = json.loads(out.read_text())["processes"]
    services = {p["service"] for p in processes}
    expected = {"web", "web (writer child)", "store (rclone)", "turn (watcher)", "turn (coturn)"}
    expected |= {"recorder"}
    if not direct:
        expected |= {"supervisord", "turn (log splitter)"}
    assert expected == services, services
    assert all(p["pss_kib"] > 0 for p in processes)
    assert "**whole stack**" in proc.stdout
    assert ("(as under systemd)" in proc.stdout) is not direct
