"""The group-commit writer's own process: one SQLite connection that runs whole transactions.

Why a process: under load the `web` event loop holds the GIL almost all the time, so a writer
*thread* waited about as long for the GIL as it spent writing. A child process has a GIL of its
own; the loop pays one pipe message out and one back per batch, and never blocks.

This is the parent's side; the child and the protocol on the pipe are in `writer_child.py`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import pickle
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from appliance.storage import writer_child
from appliance.storage.writer_child import LENGTH, READY

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")


class WriterGoneError(RuntimeError):
    """The writer process ended. Whether the batch in flight committed is unknown; its messages
    were not acked, so clients resend them and idempotency sorts it out."""


class WriterProcess:
    """Starts the child, sends it requests and matches its replies to them, in order.

    `submit` writes the request to the pipe at once, before the caller yields to the event loop:
    a batch formed in one step of the loop leaves in that step, not after whatever else the loop
    had queued (under load, the 50 acks and broadcasts of the batch before it).

    A process that dies or sends a reply that cannot be read fails every request still waiting
    with `WriterGoneError`; `start()` may then be called again. After a start that failed, the
    next one waits `restart_pause` seconds (until then it fails at once), so a writer that cannot
    start does not become a new process per batch."""

    def __init__(
        self, path: Path, *, synchronous: str, busy_timeout_ms: int, restart_pause: float = 1.0
    ) -> None:
        self._args = [str(path), synchronous, str(int(busy_timeout_ms))]
        self._restart_pause = restart_pause
        self._failed_at = -math.inf
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # Per process: a reader that ends late never touches its successor's requests.
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return (
            self._proc is not None
            and self._proc.returncode is None
            and self._reader is not None
            and not self._reader.done()
        )

    async def start(self) -> None:
        if time.monotonic() - self._failed_at < self._restart_pause:
            raise WriterGoneError("writer process failed to start moments ago; not yet again")
        try:
            await self._start()
        except BaseException:
            self._failed_at = time.monotonic()
            raise

    async def _start(self) -> None:
        env = dict(os.environ)
        # The child resolves `work` functions by module name, so it sees the modules we see
        # (and, with -P, not whatever the working directory holds).
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-m",
            writer_child.__name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        ready = self._expect(waiting)
        self._proc, self._waiting = proc, waiting
        self._reader = asyncio.create_task(self._read_replies(proc, waiting), name="writer-replies")
        try:
            if await ready != READY:
                raise WriterGoneError("writer process did not say it was ready")
        except BaseException:
            await self.stop()
            raise

    def submit(self, work: Callable[[sqlite3.Connection, A], T], arg: A) -> asyncio.Future[T]:
        """Send `work(conn, arg)` now; the future gets its result (or error) once the child has
        committed (or rolled back)."""
        proc = self._proc
        if proc is None or proc.stdin is None or not self.running:
            raise WriterGoneError("writer process is not running")
        payload = pickle.dumps((work, arg), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(LENGTH.pack(len(payload)) + payload)
        return self._expect(self._waiting)

    @staticmethod
    def _expect(waiting: collections.deque[asyncio.Future[Any]]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        return future

    @staticmethod
    async def _read_replies(
        proc: asyncio.subprocess.Process, waiting: collections.deque[asyncio.Future[Any]]
    ) -> None:
        assert proc.stdout is not None
        try:
            while True:
                (size,) = LENGTH.unpack(await proc.stdout.readexactly(LENGTH.size))
                body = await proc.stdout.readexactly(size)
                future = waiting.popleft()
                try:
                    ok, value = pickle.loads(body)  # noqa: S301 (from our own child)
                    if not future.done():  # done: nobody waits any more (the reply is read)
                        if ok:
                            future.set_result(value)
                        else:
                            future.set_exception(value)
                except Exception:
                    waiting.appendleft(future)  # failed below, with the rest
                    raise
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child exited
        except Exception:  # a reply we cannot read: the pipe is out of step, start afresh
            log.exception("unreadable reply from the writer process; stopping it")
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        finally:
            code = await proc.wait()
            gone = WriterGoneError(f"writer process exited with code {code}")
            while waiting:
                future = waiting.popleft()
                if not future.done():
                    future.set_exception(gone)

    async def stop(self, grace: float = 10.0) -> None:
        """Close the child's stdin and wait: it finishes what it was sent and exits."""
        proc, self._proc = self._proc, None
        reader, self._reader = self._reader, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if reader is not None:
            await reader  # fails whatever was still waiting, after the last reply
