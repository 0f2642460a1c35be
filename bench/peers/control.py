"""JSON lines between bench/recorder.py and its helper processes: the parent writes one request
per line to the child's stdin, the child answers each with one line on stdout (logs go to
stderr). Requests to one child are sequential."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aioice.ice

Message = dict[str, Any]
LINE_LIMIT = 16 * 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def loopback_only() -> None:
    """aiortc offers host candidates on 127.0.0.1 only: no traffic leaves the box."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of every thread of a process, dead ones included (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_and_wait_seconds(pid: int) -> tuple[float, float]:
    """Summed over a process's live threads (/proc/PID/task/*/schedstat): seconds on a CPU and
    seconds runnable but waiting for one (the CPU was busy with something else)."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue  # the thread is gone
        run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


def memory_mib(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


async def serve(handle: Callable[[Message], Awaitable[Message | None]]) -> None:
    """Child side: answer requests from stdin until EOF or until `handle` returns None."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        request = json.loads(line)
        reply = await handle(request)
        if reply is None:
            break
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def reply_and_exit(message: Message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Child:
    """Parent side: one helper process started as `python -m MODULE ARGS...`."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    @classmethod
    async def start(cls, name: str, module: str, *args: str, cwd: Path) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT,
        )
        child = cls(proc, name)
        await child.read(wait=60)  # the "ready" line
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def read(self, wait: float = 30) -> Message:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait)
        if not line:
            raise RuntimeError(f"{self.name} exited (code {await self.proc.wait()})")
        message: Message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"{self.name}: {message['error']}")
        return message

    async def request(self, message: Message, wait: float = 30) -> Message:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.read(wait)

    async def close(self, wait: float = 30) -> None:
        if self.proc.returncode is None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), wait)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
