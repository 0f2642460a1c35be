"""A real recorder service for tests: `python -m appliance --data-dir D recorder --web-url URL` in a
subprocess, up once web's /healthz says its socket is connected."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from appliance.config import Settings
from tests.support import stop_process


@dataclass
class RunningRecorder:
    proc: subprocess.Popen[bytes]
    log: Path
    settings: Settings
    web_url: str

    @property
    def workdir(self) -> Path:
        return self.settings.data_dir / "recorder"

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace")


async def recorder_state(web_url: str) -> str | None:
    """What web's /healthz says of the recorder ("up" / "down"), None if web does not answer."""
    try:
        async with httpx.AsyncClient(base_url=web_url, timeout=2) as http:
            response = await http.get("/healthz")
    except httpx.HTTPError:
        return None
    services = response.json().get("services", response.json())
    recorder = services.get("recorder") if isinstance(services, dict) else None
    return recorder.get("state") if isinstance(recorder, dict) else None


async def wait_recorder(web_url: str, state: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while await recorder_state(web_url) != state:
            await asyncio.sleep(0.05)


def spawn_recorder(settings: Settings, web_url: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "appliance", "--data-dir", str(settings.data_dir)]
    argv += ["--config", str(settings.config_path), "recorder", "--web-url", web_url]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


@asynccontextmanager
async def running_recorder(settings: Settings, web_url: str) -> AsyncIterator[RunningRecorder]:
    """Start the recorder and wait until web sees it; TERM it on the way out."""
    with tempfile.TemporaryDirectory(prefix="recorder-log-") as folder:
        log = Path(folder) / "recorder.log"
        proc = spawn_recorder(settings, web_url, log)
        running = RunningRecorder(proc, log, settings, web_url)
        try:
            async with asyncio.timeout(30):
                while await recorder_state(web_url) != "up":
                    if proc.poll() is not None:
                        raise AssertionError(f"the recorder exited:\n{running.output()}")
                    await asyncio.sleep(0.05)
            yield running
        finally:
            await asyncio.to_thread(stop_process, running.proc)
