"""The recorder's service credential: a random key in the data dir, readable only by the
appliance's own user. `web` and `recorder` share the data dir, so whichever starts first creates
it (atomically: a temporary file hard-linked into place) and both read the same key. It is not a
user account: no login, no JWT, no row in the users table."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILENAME = "recorder.key"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILENAME


def ensure_service_key(data_dir: Path) -> str:
    """The key, created with mode 0600 if there is none yet."""
    path = key_path(data_dir)
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: keep theirs
                os.link(temp, path)
        finally:
            temp.unlink(missing_ok=True)
    return path.read_text("utf-8").strip()


def key_matches(expected: str, offered: object) -> bool:
    """Constant-time comparison; anything but a non-empty string is no match."""
    if not isinstance(offered, str) or not offered or not expected:
        return False
    return hmac.compare_digest(expected.encode(), offered.encode())
