"""The TLS material of the box: its own small CA and server certificate (mode "internal"), or
files an admin or certbot keeps up to date (mode "files"); one `ssl.SSLContext` that always holds
the current certificate, so a running server hands the new one to new connections.

Directory `<data_dir>/tls` (0700): `ca-key.pem` (0600), `ca.pem`, `server-key.pem` (0600),
`server.pem` (server certificate then the CA). The web and the turn processes may both run a
manager over the same directory: changes happen under an flock, so only one of them issues.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from appliance.adapters import certificates, netinfo
from appliance.adapters.certificates import CertificateError, CertificateInfo
from appliance.config import Settings
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

SYSTEM_ROOTS = (
    Path("/etc/ssl/certs/ca-certificates.crt"),  # Debian, Raspberry Pi OS
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Material:
    cert_path: Path
    key_path: Path
    digest: bytes
    info: CertificateInfo
    ca_pem: bytes | None
    publicly_trusted: bool


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _digest(*parts: bytes) -> bytes:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.digest()


class TlsManager:
    """Keeps the certificate current; `ensure()` before servers start, then `start()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        now: Callable[[], datetime] = utc_now,
        addresses: Callable[[], list[str]] = netinfo.all_addresses,
        hostname: Callable[[], str] = socket.gethostname,
        files: tuple[Path, Path] | None = None,
    ) -> None:
        config = settings.config.tls
        self._config = config
        self._now = now
        self._addresses = addresses
        self._hostname = hostname
        self.tls_dir = settings.data_dir / "tls"
        if files is not None:
            self.mode = "files"
            self._files = files
        elif config.mode == "files":
            if not (config.cert_file and config.key_file):
                raise ConfigError('tls.mode = "files" needs tls.cert_file and tls.key_file')
            self.mode = "files"
            self._files = (
                _resolve(settings, config.cert_file),
                _resolve(settings, config.key_file),
            )
        else:
            self.mode = "internal"
            self._files = (self.tls_dir / "server.pem", self.tls_dir / "server-key.pem")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._material: _Material | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        #: Counts the certificates loaded; tests and listeners wait for it to move.
        self.generation = 0
        self._listeners: list[Callable[[], None]] = []

    # --- what others read -----------------------------------------------------------------

    @property
    def info(self) -> CertificateInfo | None:
        return self._material.info if self._material else None

    @property
    def ca_pem(self) -> bytes | None:
        """The CA to trust: ours in mode internal; in mode files the chain's own root when the
        chain ends in one that is not publicly trusted; else None."""
        return self._material.ca_pem if self._material else None

    @property
    def publicly_trusted(self) -> bool:
        return bool(self._material and self._material.publicly_trusted)

    @property
    def cert_path(self) -> Path:
        return self._files[0]

    @property
    def key_path(self) -> Path:
        return self._files[1]

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in the event loop, or in `ensure()`'s caller) after each reload."""
        self._listeners.append(callback)

    async def wait_for_generation(self, generation: int) -> None:
        """Until a certificate newer than `generation` is loaded."""
        while self.generation <= generation:
            await self._changed.wait()

    def wanted_names(self) -> list[str]:
        """Names of the internal server certificate: host name, <host>.local, localhost,
        loopback addresses, every non-loopback address of the box, and tls.extra_names."""
        host = self._hostname().strip().rstrip(".").lower()
        names = [host, f"{host.split('.')[0]}.local"] if host else []
        names += ["localhost", "127.0.0.1", "::1", *self._addresses(), *self._config.extra_names]
        usable: list[str] = []
        for name in names:
            try:
                certificates.parse_name(name)
            except CertificateError:
                log.warning("left out of the certificate (not a host name or address): %r", name)
                continue
            usable.append(name)
        return list(dict.fromkeys(usable))

    # --- keeping it current ---------------------------------------------------------------

    def ensure(self) -> bool:
        """Make sure the certificate is current and loaded (blocking). True if it changed."""
        material = self._prepare()
        if material is None:
            return False
        self._load(material)
        return True

    async def refresh(self) -> bool:
        """`ensure()` with the file work in a thread; the context is changed in the loop."""
        material = await asyncio.to_thread(self._prepare)
        if material is None:
            return False
        self._load(material)
        return True

    async def start(self) -> None:
        if self._material is None:
            await self.refresh()
        self._task = asyncio.create_task(self._run(), name="tls-manager")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config.check_interval)
            try:
                await self.refresh()
            except Exception:  # keep serving the certificate we have
                log.exception("checking the TLS certificate failed")

    def _load(self, material: _Material) -> None:
        self.context.load_cert_chain(material.cert_path, material.key_path)
        self._material = material
        self.generation += 1
        log.info(
            "TLS certificate loaded: %s, valid until %s",
            ", ".join(material.info.names) or material.info.subject,
            f"{material.info.not_after:%Y-%m-%d}",
        )
        self._changed.set()
        self._changed = asyncio.Event()
        for callback in self._listeners:
            try:
                callback()
            except Exception:
                log.exception("a TLS change listener failed")

    def _prepare(self) -> _Material | None:
        """The material to load if it differs from what is loaded, else None."""
        if self.mode == "internal":
            with self._locked():
                self._issue_if_needed()
        cert_pem = _read(self.cert_path)
        key_pem = _read(self.key_path)
        if cert_pem is None or key_pem is None:
            self._unusable(f"cannot read {self.cert_path} or {self.key_path}")
            return None
        digest = _digest(cert_pem, key_pem)
        if self._material is not None and self._material.digest == digest:
            return None
        try:
            info = certificates.validate_pair(cert_pem, key_pem, now=self._now())
        except CertificateError as exc:
            self._unusable(f"{self.cert_path}: {exc}")
            return None
        ca_pem, public = self._trust(cert_pem)
        return _Material(self.cert_path, self.key_path, digest, info, ca_pem, public)

    def _unusable(self, why: str) -> None:
        if self._material is None:
            raise ConfigError(f"no usable TLS certificate: {why}")
        log.warning("keeping the current TLS certificate: %s", why)  # e.g. certbot mid-renewal

    def _trust(self, cert_pem: bytes) -> tuple[bytes | None, bool]:
        if self.mode == "internal":
            return _read(self.tls_dir / "ca.pem"), False
        roots = next((r for p in SYSTEM_ROOTS if (r := _read(p)) is not None), b"")
        if roots and certificates.publicly_trusted(cert_pem, roots, now=self._now()):
            return None, True
        top = certificates.load_chain(cert_pem)[-1]
        if certificates.describe(top).self_signed:
            from cryptography.hazmat.primitives.serialization import Encoding

            return top.public_bytes(Encoding.PEM), False
        return None, False

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tls_dir.chmod(0o700)
        with (self.tls_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _issue_if_needed(self) -> None:
        now = self._now()
        renew_before = timedelta(days=self._config.renew_before_days)
        ca_key_path, ca_path = self.tls_dir / "ca-key.pem", self.tls_dir / "ca.pem"
        ca_key, ca_pem = _read(ca_key_path), _read(ca_path)
        ca_ok = False
        if ca_key is not None and ca_pem is not None:
            try:
                ca_info = certificates.validate_pair(ca_pem, ca_key, now=now)
                ca_ok = ca_info.not_after - now > renew_before
            except CertificateError as exc:
                log.warning("making a new CA: the current one is unusable: %s", exc)
        if not ca_ok or ca_key is None or ca_pem is None:
            host = self._hostname().split(".")[0] or "appliance"
            ca_key, ca_pem = certificates.create_ca(f"Appliance CA ({host})", now=now)
            certificates.write_pem(ca_key_path, ca_key, private=True)
            certificates.write_pem(ca_path, ca_pem, private=False)
            log.info("created a new certificate authority in %s", self.tls_dir)
        wanted = self.wanted_names()
        why = self._reissue_reason(ca_pem, wanted, now, renew_before)
        if why is None:
            return
        key_pem, cert_pem = certificates.issue_server_cert(ca_key, ca_pem, wanted, now=now)
        certificates.write_pem(self.key_path, key_pem, private=True)
        certificates.write_pem(self.cert_path, cert_pem, private=False)
        log.info("issued a new server certificate (%s) for %s", why, ", ".join(wanted))

    def _reissue_reason(
        self, ca_pem: bytes, wanted: list[str], now: datetime, renew_before: timedelta
    ) -> str | None:
        cert_pem, key_pem = _read(self.cert_path), _read(self.key_path)
        if cert_pem is None or key_pem is None:
            return "none yet"
        try:
            info = certificates.validate_pair(cert_pem, key_pem, now=now)
            leaf = certificates.load_chain(cert_pem)[0]
            ca = certificates.load_chain(ca_pem)[0]
        except CertificateError as exc:
            return f"the current one is unusable: {exc}"
        try:
            leaf.verify_directly_issued_by(ca)
        except Exception:  # any failure: not signed by this CA
            return "a new CA"
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return "the current one has no names"
        if set(san) != {certificates.parse_name(n) for n in wanted}:
            return "the names changed"
        if info.not_after - now <= renew_before:
            return "it expires soon"
        return None


def _resolve(settings: Settings, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else settings.data_dir / path
