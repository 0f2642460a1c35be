"""The group-commit writer's own process: one SQLite connection that runs whole transactions.

Why a process: under load the `web` event loop holds the GIL almost all the time, so a writer
*thread* waited about as long for the GIL as it spent writing. A child process has a GIL of its
own; the loop pays one pipe message out and one back per batch, and never blocks.

Protocol on the child's stdin/stdout: frames of a 4-byte big-endian length and a pickle.
  request  (work, arg)            `work` a module-level function `work(conn, arg)`
  reply    (True, result) | (False, exception)
The child sends one frame `(True, "ready")` once its connection is open. It runs every request
as BEGIN IMMEDIATE ... COMMIT (ROLLBACK if `work` raises) and exits when its stdin closes, so it
never outlives `web`: a SIGKILLed parent closes the pipe, and the child finishes the transaction it
is in (or SQLite rolls it back) and exits.

Only plain data should cross: the pickles come from, and go to, our own parent process.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sqlite3
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")
A = TypeVar("A")

_LENGTH = struct.Struct(">I")
_READY = "ready"


class WriterGoneError(RuntimeError):
    """The writer process ended. Whether the batch in flight committed is unknown; its messages
    were not acked, so clients resend them and idempotency sorts it out."""


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


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
            __name__,
            *self._args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        ready = await self._receive()
        if ready != _READY:
            await self.stop()
            raise WriterGoneError(f"writer process did not start: {ready!r}")

    async def call(self, work: Callable[[sqlite3.Connection, A], T], arg: A) -> T:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise WriterGoneError("writer process is not running")
        payload = pickle.dumps((work, arg), protocol=pickle.HIGHEST_PROTOCOL)
        proc.stdin.write(_LENGTH.pack(len(payload)) + payload)
        result: T = await self._receive()
        return result

    async def _receive(self) -> Any:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise WriterGoneError("writer process is not running")
        try:
            (size,) = _LENGTH.unpack(await proc.stdout.readexactly(_LENGTH.size))
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


# ---------------------------------------------------------------------------------------------
# Child side
# ---------------------------------------------------------------------------------------------


def _send(out: BinaryIO, ok: bool, value: object) -> None:
    try:
        payload = pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception or result that cannot be pickled
        payload = pickle.dumps((False, RuntimeError(f"{value!r} ({exc})")))
    out.write(_LENGTH.pack(len(payload)) + payload)
    out.flush()


def _read_exactly(source: BinaryIO, size: int) -> bytes | None:
    data = source.read(size)
    return data if len(data) == size else None


def serve(
    path: str, synchronous: str, busy_timeout_ms: int, source: BinaryIO, out: BinaryIO
) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        _send(out, True, _READY)
        while (header := _read_exactly(source, _LENGTH.size)) is not None:
            body = _read_exactly(source, _LENGTH.unpack(header)[0])
            if body is None:
                return
            try:
                work, arg = pickle.loads(body)  # noqa: S301 (our parent, on our stdin)
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn, arg)
                conn.execute("COMMIT")
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                _send(out, False, exc)
            else:
                _send(out, True, result)
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    # Ctrl-C reaches the whole process group; the parent decides when we stop (by closing stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if len(argv) != 3 or argv[1].upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        print("usage: writer_process DB_PATH SYNCHRONOUS BUSY_TIMEOUT_MS", file=sys.stderr)
        return 2
    serve(argv[0], argv[1].upper(), int(argv[2]), sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
