"""Run a command and split its output: lines that look like errors to stderr, the rest to stdout.

`appliance up` runs the `turn` service through this: supervisord writes the wrapper's stdout to a
log file in the run dir (rotated) and its stderr to the console, so coturn's start-up banner (some
eighty lines each start) stays out of the console while its errors still show there.

    python -m appliance.supervision.logsplit --name turn --log run/turn.log -- COMMAND...
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import IO

# coturn 4.6.1 does not mark its levels ("0: : Cannot bind ... socket"), later versions write
# "ERROR:"; the appliance's own messages before it execs coturn start with "appliance:".
ERROR_LINE = re.compile(
    rb"error|cannot|can't|fail|errno|traceback|denied|not found|^appliance:", re.IGNORECASE
)
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def is_error(line: bytes) -> bool:
    return ERROR_LINE.search(line) is not None


def split(source: IO[bytes], log: IO[bytes], console: IO[bytes], name: str) -> None:
    """Copy `source` line by line until it ends: errors to `console` (prefixed), all to `log`."""
    prefix = f"{name}: ".encode()
    for line in iter(source.readline, b""):
        log.write(line)
        log.flush()
        if is_error(line):
            console.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            console.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.supervision.logsplit")
    parser.add_argument("--name", required=True, help="the service, prefixed to console lines")
    parser.add_argument("--log", default="", help="named in the console note (supervisord's)")
    parser.add_argument("command", nargs="+", help="the command to run (after --)")
    args = parser.parse_args(argv)
    if args.log:
        print(f"{args.name}: started; its log is {args.log} (errors show here)", file=sys.stderr)
        sys.stderr.flush()
    proc = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def forward(signum: int, _frame: FrameType | None) -> None:
        # supervisord signals the whole group (stopasgroup); forwarding covers a lone signal.
        if proc.poll() is None:
            proc.send_signal(signum)

    for signum in FORWARDED:
        signal.signal(signum, forward)
    assert proc.stdout is not None
    with proc.stdout:
        split(proc.stdout, sys.stdout.buffer, sys.stderr.buffer, args.name)
    code = proc.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
