"""coturn as a child process: its output re-logged line by line, SIGUSR2 when the certificate
files change, its end or ours ending the other.

This is the long-running part of the `turn` service. `appliance turn` does the heavy work once
(config model, certificate issue, the rendered turnserver.conf: `services.turnserver`), then
replaces itself with this module:

    python -m appliance.adapters.coturn_process [--cert PEM --key PEM] [--interval S]
        [--log-format text|json] [--log-level info] -- TURNSERVER ARGS...

It imports the standard library and the log formatter only and runs one `selectors` loop (no
asyncio), so the parent that lives beside coturn costs about 8 MiB PSS instead of the 33 MiB of
the config stack (docs/benchmarks.md, "Whole stack at rest"). The certificate files are read
every `--interval` seconds; when their bytes change and the new pair loads (a certificate and the
key that matches it, as coturn will need), coturn is sent SIGUSR2. A pair that does not load yet
(certbot between its two writes) is skipped with a warning and looked at again next time.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("appliance.adapters.coturn_process")  # also when run as __main__

STOP_TIMEOUT = 10.0
#: A line of coturn's longer than this is dropped (it would otherwise grow the buffer forever).
MAX_LINE = 64 * 1024

#: coturn's own lines, re-logged one by one so they get the service's log format and level.
coturn_log = logging.getLogger("coturn")
_COUNTER = re.compile(r"^\d+: (?:\(\d+\): )?:? ?")  # "0: : " / "12: (1234): " uptime prefix
_ERROR = re.compile(r"error|cannot|can't|fail|errno|denied|not found", re.IGNORECASE)
_WARNING = re.compile(r"warn", re.IGNORECASE)


def coturn_line(raw: bytes) -> tuple[int, str]:
    """The level and text of one line of coturn's output (its levels are words in the text,
    and 4.6.1 writes none)."""
    text = _COUNTER.sub("", raw.decode("utf-8", "replace").rstrip())
    if "ERROR" in text:
        return logging.ERROR, text
    if _WARNING.search(text):
        return logging.WARNING, text
    if _ERROR.search(text):
        return logging.ERROR, text
    return logging.INFO, text


class _Lines:
    """coturn's output, cut into lines and re-logged."""

    def __init__(self) -> None:
        self._partial = b""
        self._skipping = False  # in a line over MAX_LINE: dropped up to its end

    def feed(self, chunk: bytes) -> None:
        """Log every complete line; an empty chunk (the end of the output) logs what is left."""
        if not chunk:
            rest, self._partial = self._partial, b""
            if not self._skipping:
                self._log(rest)
            return
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        for raw in complete:
            if self._skipping:
                self._skipping = False
                continue
            self._log(raw)
        if len(self._partial) > MAX_LINE:
            self._partial, self._skipping = b"", True

    @staticmethod
    def _log(raw: bytes) -> None:
        level, text = coturn_line(raw)
        if text:
            coturn_log.log(level, "%s", text)


class CertificateWatch:
    """The certificate and key files coturn was started with; `changed()` says when coturn
    should reload them."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self._seen = self._read()

    def _read(self) -> tuple[bytes, bytes] | None:
        try:
            return self.cert.read_bytes(), self.key.read_bytes()
        except OSError:
            return None

    def changed(self) -> bool:
        """True once per change of the files to a pair that loads."""
        now = self._read()
        if now is None or now == self._seen:
            return False
        import ssl  # only when the files changed: ssl is a few MiB this process need not hold

        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            log.warning("keeping the current TLS certificate: %s: %s", self.cert, exc)
            return False
        self._seen = now
        return True


def run(
    argv: Sequence[str],
    *,
    stop_fd: int,
    certificate: tuple[Path, Path] | None = None,
    interval: float = 60.0,
    on_started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> int:
    """Run coturn (`argv`) until it exits (its exit status, or 1 if it died of a signal) or
    until `stop_fd` becomes readable (then 0). A change of the `certificate` files reaches it
    as SIGUSR2. Blocking; one thread, no event loop."""
    watch = CertificateWatch(*certificate) if certificate is not None else None
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.fileno()
    os.set_blocking(output, False)
    lines = _Lines()
    stopped = False
    if on_started is not None:
        on_started(proc)
    with selectors.DefaultSelector() as selector, proc.stdout:
        selector.register(output, selectors.EVENT_READ)
        selector.register(stop_fd, selectors.EVENT_READ)
        next_check = time.monotonic() + interval
        ended = False  # coturn closed its output: it is gone (or going)
        while not ended and not stopped:
            wait = max(0.0, next_check - time.monotonic()) if watch is not None else None
            for key, _ in selector.select(wait):
                if key.fd == stop_fd:
                    stopped = True
                else:
                    ended = _read(output, lines)
            if watch is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + interval
                if watch.changed() and proc.poll() is None:
                    log.info("certificate changed: asking coturn to reload it (SIGUSR2)")
                    proc.send_signal(signal.SIGUSR2)
        if proc.poll() is None and stopped:
            proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        selector.unregister(stop_fd)
        deadline = time.monotonic() + STOP_TIMEOUT
        while not ended and time.monotonic() < deadline:  # the rest of its output
            if selector.select(max(0.0, deadline - time.monotonic())):
                ended = _read(output, lines)
    if stopped:
        return 0
    code = proc.returncode or 0
    log.error("coturn exited on its own (status %s)", code)
    return code if code > 0 else 1


def _read(fd: int, lines: _Lines) -> bool:
    """Read what coturn wrote; True at the end of its output."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    lines.feed(chunk)
    return not chunk


def command(
    argv: Sequence[str],
    *,
    certificate: tuple[Path, Path] | None,
    interval: float,
    log_format: str,
    log_level: str,
    python: str = sys.executable,
) -> list[str]:
    """The command line that runs `main` with these settings."""
    line = [python, "-m", "appliance.adapters.coturn_process", "--interval", repr(interval)]
    line += ["--log-format", log_format, "--log-level", log_level]
    if certificate is not None:
        line += ["--cert", str(certificate[0]), "--key", str(certificate[1])]
    return [*line, "--", *argv]


def main(args: Sequence[str] | None = None) -> int:
    from appliance.observability.logs import LEVELS, configure_logging

    parser = argparse.ArgumentParser(prog="python -m appliance.adapters.coturn_process")
    parser.add_argument("--cert", type=Path, default=None)
    parser.add_argument("--key", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument("--log-level", choices=list(LEVELS), default="info")
    parser.add_argument("argv", nargs="+", help="turnserver and its arguments (after --)")
    options = parser.parse_args(args)
    configure_logging(options.log_format, options.log_level, service="turn")
    certificate = None
    if options.cert is not None and options.key is not None:
        certificate = (options.cert, options.key)
    stop_r, stop_w = os.pipe()
    os.set_blocking(stop_w, False)

    def stop(_signum: int, _frame: object) -> None:
        with contextlib.suppress(BlockingIOError):
            os.write(stop_w, b"x")

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    return run(
        options.argv,
        stop_fd=stop_r,
        certificate=certificate,
        interval=max(options.interval, 0.01),
    )


if __name__ == "__main__":
    sys.exit(main())
