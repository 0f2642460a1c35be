"""Smoke run of the recorder benchmark (bench/recorder.py --quick): one stream through the
pass-through sinks, one through aiortc's MediaRecorder, a 5 s mix; checks the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

STEP_KEYS = {
    "mode",
    "streams",
    "receiver_cpu_cores",
    "cpu_pct_per_stream",
    "rss_mib",
    "rss_per_stream_mib",
    "sender_cpu_cores",
    "video",
    "audio",
    "loop_lag_max_ms",
    "kept_up",
    "file_mismatches",
}
KIND_KEYS = {"sent", "written", "lost", "drop_pct", "lag_max_ms", "written_pct"}


@pytest.mark.timeout(150)
def test_quick_run_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "recorder.json"
    run = subprocess.run(
        [sys.executable, "bench/recorder.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| mode | streams |" in run.stdout
    info: dict[str, Any] = json.loads(out.read_text())
    assert {"nproc", "cpu", "date", "libraries"} <= set(info["machine"])
    assert info["clip"]["video_frames"] == 60 and info["clip"]["keyframes"] == 2
    assert info["passthrough_available"] is True
    modes = {step["mode"]: step for step in info["steps"]}
    assert set(modes) == {"passthrough", "stock"}
    for step in modes.values():
        assert set(step) >= STEP_KEYS, step.get("failed")
        assert step["streams"] == 1 and step["tracks"] == 2
        assert set(step["video"]) >= KIND_KEYS and set(step["audio"]) >= KIND_KEYS
        assert step["video"]["sent"] > 100 and step["receiver_cpu_cores"] > 0
        assert step["file_mismatches"] == []
    passthrough = modes["passthrough"]
    assert passthrough["video"]["lost"] == 0 and passthrough["audio"]["lost"] == 0
    assert passthrough["errors"] == []
    assert set(info["summary"]) == {"passthrough", "stock"}
    mix = info["mix"]
    assert mix["output"]["content_type"] == "video/webm"
    assert mix["output"]["streams"] == ["video vp8 1280x480", "audio opus"]
    assert mix["mix_wall_s"] > 0 and mix["wall_s_per_min"] > 0 and mix["cpu_s_per_min"] > 0
