"""The group-commit writer's own process: one SQLite connection that runs whole transactions.

Why a process: under load the `web` event loop holds the GIL almost all the time, so a writer
*thread* waited about as long for the GIL as it spent writing. A child process has a GIL of its
own; the loop pays one pipe message out and one back per batch, and never blocks.

This is the parent's side; the child and the protocol on the pipe are in `writer_child.py`.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from appliance.storage import writer_child
from appliance.storage.writer_child import LENGTH, READY

T = TypeVar("T")
A = TypeVar("A")


class WriterGoneError(RuntimeError):
    """The writer process ended. Whether the batch in flight committed is unknown; its messages
    were not acked, so clients resend them and idempotency sorts it out."""


class WriterProcess:
    """Starts the child and makes one call at a time (the caller serialises calls)."""

    def __init__(self, path: Path, *, synchronous: str, busy_timeout_ms: int) -> None:
        self._args = [str(path), synchronous, str(int(busy_timeout_ms))]
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        env = dict(os.environ)
        # The child resolves `work` functions by module name, so it sees the modules we see.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            writer_child.__name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        ready = await self._receive()
        if ready != READY:
            await self.stop()
            raise WriterGoneError(f"writer process did not start: {ready!r}")

    async def call(self, work: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise WriterGoneError("writer process is not running")
        payload = pickle.dumps((work, arg), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(LENGTH.pack(len(payload)) + payload)
        result: T = await self._receive()
        return result

    async def _receive(self) -> Any:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise WriterGoneError("writer process is not running")
        try:
            (size,) = LENGTH.unpack(await proc.stdout.readexactly(LENGTH.size))
            ok, value = pickle.loads(await proc.stdout.readexactly(size))  # noqa: S301 (our child)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            code = await proc.wait()
            raise WriterGoneError(f"writer process exited with code {code}") from exc
        if not ok:
            raise value
        return value

    async def stop(self, grace: float = 10.0) -> None:
        """Close the child's stdin and wait: it finishes what it was asked and exits."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()
