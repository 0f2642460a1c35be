"""The message writer process (started by `writer_process.WriterProcess`): one SQLite
connection that runs whole transactions for its parent, `web`.

Protocol on its stdin/stdout: frames of a 4-byte big-endian length and a pickle.
  request  (work, arg)            `work` a module-level function `work(conn, arg)`
  reply    (True, result) | (False, exception)
It sends one frame `(True, "ready")` once its connection is open. It runs every request as
BEGIN IMMEDIATE ... COMMIT (ROLLBACK if `work` raises) and exits when its stdin closes, so it never
outlives `web`: a SIGKILLed parent closes the pipe, and it finishes the transaction it is in (or
SQLite rolls it back) and exits.

Only plain data should cross: the pickles come from, and go to, our own parent process. This
module imports little (no asyncio, no aiosqlite), to keep the process small.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
import struct
import sys
from typing import BinaryIO

LENGTH = struct.Struct(">I")
READY = "ready"


def _send(out: BinaryIO, ok: bool, value: object) -> None:
    try:
        payload = pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
        if not ok:
            pickle.loads(payload)  # noqa: S301 (our own) - an error must also unpickle there
    except Exception as exc:  # a result or error that cannot travel (a result: after COMMIT;
        # work functions return plain data, so that is a bug in one, reported as one)
        what = "result" if ok else f"error {type(value).__name__}"
        payload = pickle.dumps((False, RuntimeError(f"the writer's {what} cannot be sent: {exc}")))
    out.write(LENGTH.pack(len(payload)) + payload)
    out.flush()


def _as_error(exc: Exception) -> Exception:
    """An exception a future can hold (a StopIteration cannot)."""
    return RuntimeError(repr(exc)) if isinstance(exc, StopIteration) else exc


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
        _send(out, True, READY)
        while (header := _read_exactly(source, LENGTH.size)) is not None:
            body = _read_exactly(source, LENGTH.unpack(header)[0])
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
                _send(out, False, _as_error(exc))
            else:
                _send(out, True, result)
    except BrokenPipeError:
        return  # the parent is gone; what was committed stays, and nothing is left open
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    # Ctrl-C, supervisord (stopasgroup) and systemd (the unit's cgroup) signal us together with
    # `web`; `web` decides when we stop, by closing our stdin once its last batch is answered.
    # (If it does not stop in time, both follow up with SIGKILL.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if len(argv) != 3 or argv[1].upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        usage = "usage: python -m appliance.storage.writer_child DB SYNCHRONOUS BUSY_TIMEOUT_MS"
        print(usage, file=sys.stderr)
        return 2
    # The replies get a descriptor of their own, and fd 1 becomes stderr: a stray print() in a
    # work function must not corrupt the reply stream.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(argv[0], argv[1].upper(), int(argv[2]), sys.stdin.buffer, replies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
