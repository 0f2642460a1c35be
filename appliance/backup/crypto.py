"""Encrypted archives with age (through pyrage), streamed so an archive may be bigger than RAM.

pyrage's passphrase mode encrypts bytes in memory only, so the archive is encrypted to an age
X25519 key made for this one backup, streamed (`pyrage.encrypt_io`), and that key itself is
encrypted with the passphrase (age's scrypt recipient) and kept in the file's header:

    appliance-backup+age v1\\n
    <base64 of the age file (scrypt) holding the X25519 identity>\\n
    <the age file (X25519) holding the tar>

Both parts are plain age files, so the `age` command can open a backup too (docs/backup.md).
pyrage's streaming calls run in a thread, joined to ours by a pipe.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import threading
from typing import BinaryIO

import pyrage  # type: ignore[import-untyped]
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from appliance.backup.errors import BackupError

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux
MAGIC = b"appliance-backup+age v1\n"
#: The header line with the wrapped key is small (about 350 bytes); anything longer is not ours.
MAX_HEADER_LINE = 4096
MIN_PASSPHRASE = 8
#: The pipe between our thread and pyrage's: big, so the two hand over rarely (each hand-over
#: may wait for the other thread to give up the GIL).
PIPE_SIZE = 1 << 20


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # the kernel may cap it (pipe-max-size): fine
        fcntl.fcntl(write_fd, F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


def check_new_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise BackupError(f"the passphrase is too short (at least {MIN_PASSPHRASE} characters)")


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC)


class EncryptingWriter:
    """A write-only stream: what is written goes, encrypted, to `out` after the header."""

    def __init__(self, out: BinaryIO, passphrase: str) -> None:
        identity = x25519.Identity.generate()
        wrapped = age_passphrase.encrypt(str(identity).encode(), passphrase)
        out.write(MAGIC + base64.b64encode(wrapped) + b"\n")
        read_fd, write_fd = _pipe()
        self._source = os.fdopen(read_fd, "rb")
        self._sink = os.fdopen(write_fd, "wb", buffering=PIPE_SIZE)
        self._out = out
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(identity.to_public(),), name="age-encrypt", daemon=True
        )
        self._thread.start()

    def _run(self, recipient: object) -> None:
        try:
            pyrage.encrypt_io(self._source, self._out, [recipient])
        except BaseException as exc:
            self._error = exc
        finally:
            self._source.close()

    def write(self, data: bytes) -> int:
        try:
            return self._sink.write(data)
        except BrokenPipeError:
            self._thread.join()
            raise BackupError(f"encryption failed: {self._error}") from None

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        """Finish the encrypted stream (its last chunk); raise if encryption failed."""
        if not self._sink.closed:
            with contextlib.suppress(BrokenPipeError):
                self._sink.close()
        self._thread.join()
        if self._error is not None:
            raise BackupError(f"encryption failed: {self._error}")

    def abort(self) -> None:
        if not self._sink.closed:
            with contextlib.suppress(OSError):
                self._sink.close()
        self._thread.join()


def read_identity(source: BinaryIO, passphrase: str) -> object:
    """After MAGIC: the header line's X25519 identity, decrypted with the passphrase."""
    line = source.readline(MAX_HEADER_LINE)
    if not line.endswith(b"\n"):
        raise BackupError("the encrypted archive's header is damaged or truncated")
    try:
        wrapped = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BackupError("the encrypted archive's header is damaged") from None
    try:
        secret = age_passphrase.decrypt(wrapped, passphrase)
    except pyrage.DecryptError:
        raise BackupError(
            "wrong passphrase (or the encrypted archive's header is damaged)"
        ) from None
    try:
        return x25519.Identity.from_str(secret.decode())
    except (UnicodeDecodeError, pyrage.IdentityError, ValueError):
        raise BackupError("the encrypted archive's header is damaged") from None


class DecryptingReader:
    """A read-only stream of the plaintext of the age body that follows in `source`.

    Every 64 KiB chunk is authenticated before it is handed on; the last chunk is marked, so a
    cut-off file fails at its end. `finish()` reads to the end and raises if anything failed."""

    def __init__(self, source: BinaryIO, identity: object) -> None:
        read_fd, write_fd = _pipe()
        self._plain = os.fdopen(read_fd, "rb", buffering=PIPE_SIZE)
        self._sink = os.fdopen(write_fd, "wb", buffering=PIPE_SIZE)
        self._source = source
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(identity,), name="age-decrypt", daemon=True
        )
        self._thread.start()

    def _run(self, identity: object) -> None:
        try:
            pyrage.decrypt_io(self._source, self._sink, [identity])
        except BaseException as exc:
            self._error = exc
        finally:
            with contextlib.suppress(OSError):
                self._sink.close()

    def read(self, size: int = -1) -> bytes:
        return self._plain.read(size)

    def finish(self) -> bool:
        """Read what is left (the tar's zero padding, normally) and wait for the end; True if
        that rest was all zeros. BackupError if decryption or authentication failed anywhere."""
        zeros = True
        while chunk := self._plain.read(1 << 16):
            zeros = zeros and chunk.count(0) == len(chunk)
        self._thread.join()
        self._plain.close()
        if self._error is not None:
            raise BackupError(
                "the encrypted archive is damaged or truncated (authentication failed)"
            )
        return zeros

    def abort(self) -> None:
        self._plain.close()  # the decrypting thread's next write fails: it ends
        self._thread.join()
