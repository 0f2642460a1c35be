"""One log line per event, with a level: `text` (key=value) or `json`, for every service.

The stdlib `logging` module stays the API (every module logs through it, and so do uvicorn,
python-engineio and the other libraries); this module gives the root logger one handler with
`LineFormatter`, and routes the libraries that add handlers of their own through it:

    ts=2026-12-03T04:25:57.123Z level=info logger=appliance.services.media service=web msg="object store is ready"
    {"ts": "2026-12-03T04:25:57.123Z", "level": "info", "logger": "...", "service": "web", "msg": "..."}

Fields passed with `extra={...}` follow `msg`; a traceback is one `exc` field (newlines escaped),
so an event never spans lines. When stderr is the journal (systemd sets `JOURNAL_STREAM`), each
line starts with its syslog priority (`<4>` for a warning, sd-daemon(3)), which journald takes
as the entry's priority, so `journalctl -p warning` works. `redact` is a safety net for secrets that slip into a line (JWTs,
`Bearer ...`, `password=...`-like pairs); it is no licence to log them.
"""  # noqa: E501

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

#: Libraries that would otherwise add a handler of their own (python-engineio and
#: python-socketio do when their logger has no level): kept at ERROR, through the root handler.
OWN_HANDLER_LOGGERS = ("engineio.server", "socketio.server", "engineio.client", "socketio.client")
#: Libraries whose DEBUG lines carry frames, SQL or URLs: never below INFO/WARNING.
QUIET_LOGGERS = {
    "websockets": logging.INFO,
    "aiosqlite": logging.INFO,
    "urllib3": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "hpack": logging.WARNING,
    "aioice": logging.INFO,
    "aiortc": logging.INFO,
}

#: sd-daemon(3) priority prefixes, read by journald (SyslogLevelPrefix=yes, its default).
PRIORITIES = {
    logging.DEBUG: "<7>",
    logging.INFO: "<6>",
    logging.WARNING: "<4>",
    logging.ERROR: "<3>",
    logging.CRITICAL: "<2>",
}

_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

REDACTED = "[redacted]"
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|setup|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_SECRET_PAIR = re.compile(
    r"(?i)([\w.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|credential|signature)"
    r"[\w.-]*)"
    r"(\"?'?\s*[=:]\s*\"?'?)"
    r"([^\s\"'&,;)}\]]+)"
)


def redact(text: str) -> str:
    """Mask what looks like a secret: JWTs, `Bearer <x>`, `password=<x>` / `"token": "<x>"`."""
    if not text:
        return text
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
    return _SECRET_PAIR.sub(rf"\1\2{REDACTED}", text)


_BARE = re.compile(r"^[A-Za-z0-9_.:/@+,\[\]-]+$")


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) or value is None:
        return "null" if value is None else str(value)
    text = str(value)
    if _BARE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted; \, ", newlines escaped


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class LineFormatter(logging.Formatter):
    """`text`: `ts=... level=... logger=... [service=...] msg="..." key=value`; `json`: one
    object a line with the same fields."""

    def __init__(self, fmt: str = "text", *, service: str = "", journal: bool = False) -> None:
        super().__init__()
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be text or json, not {fmt!r}")
        self._json = fmt == "json"
        self._service = service
        self._journal = journal

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        out: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if self._service:
            out["service"] = self._service
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format in a call: say so rather than lose the line
            message = f"{record.msg!r} (unformattable arguments)"
        out["msg"] = redact(message)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and not key.startswith("_") and key not in out:
                out[key] = _json_value(value)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact(record.exc_text)
        if record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return out

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self._json:
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
        if self._journal:
            level = record.levelno
            prefix = PRIORITIES.get(level) or ("<3>" if level > logging.WARNING else "<6>")
            return prefix + line
        return line


def is_journal(stream: IO[str]) -> bool:
    """True when `stream` is the journal's socket: systemd then sets `JOURNAL_STREAM` to its
    `<device>:<inode>` (systemd.exec(5))."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        found = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return expected == f"{found.st_dev}:{found.st_ino}"


def _log_uncaught(
    kind: type[BaseException], value: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    logging.getLogger("appliance").critical("uncaught exception", exc_info=(kind, value, traceback))


def configure_logging(
    fmt: str = "text",
    level: str = "info",
    *,
    service: str = "",
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Give the root logger one handler (stderr: the journal under systemd, supervisord's
    output under `appliance up`) and route every library's lines through it. Idempotent: a
    second call replaces the first one's handler (the CLI calls it again once the config is
    read)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    target = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(target)
    handler.setFormatter(LineFormatter(fmt, service=service, journal=is_journal(target)))
    root.addHandler(handler)
    threshold = LEVELS[level]
    root.setLevel(threshold)
    for name in OWN_HANDLER_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.setLevel(logging.ERROR)
        library.propagate = True
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(threshold, floor))
    for name in ("uvicorn", "uvicorn.error", "hypercorn.error"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    return handler
