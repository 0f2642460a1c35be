"""Certificates with `cryptography`: the box's small CA, its server certificates, and the checks
an uploaded certificate and key must pass.

Pure functions over PEM bytes; the only I/O is `install_pair`, which writes what it is given.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
MAX_SERVER_DAYS = 397  # browsers refuse leaf certificates valid for more than 398 days
MAX_PEM_BYTES = 256 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    names: tuple[str, ...]  # SAN DNS names and IP addresses
    not_before: datetime
    not_after: datetime
    subject: str
    issuer: str
    self_signed: bool


class CertificateError(ValueError):
    """A certificate or key that cannot be used; str(exc) is a plain-language message."""


# --- creating ---------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_ca(common_name: str, *, now: datetime | None = None) -> tuple[bytes, bytes]:
    """A new CA (EC P-256, ~10 years, may sign leaf certificates only). Returns (key, cert) PEM."""
    start = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64] or "Appliance CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Appliance"),
        ]
    )
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(hours=1))
        .not_valid_after(start + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures only; a CA also signs certificates and revocation lists."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def parse_name(name: str) -> x509.GeneralName:
    """A SAN entry: an IP address when `name` is one, else a DNS name (lower case)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    cleaned = name.strip().rstrip(".").lower()
    if not cleaned or len(cleaned) > 253 or any(not _dns_label_ok(p) for p in cleaned.split(".")):
        raise CertificateError(f"{name!r} is neither a host name nor an IP address")
    return x509.DNSName(cleaned)


def _dns_label_ok(label: str) -> bool:
    if label == "*":
        return True
    return 0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) and label.isascii()


def issue_server_cert(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    names: Sequence[str],
    *,
    now: datetime,
    days: int = MAX_SERVER_DAYS,
) -> tuple[bytes, bytes]:
    """A server certificate (new EC P-256 key) for `names`, signed by the CA.

    Returns (key PEM, certificate PEM followed by the CA certificate)."""
    if not names:
        raise ValueError("a server certificate needs at least one name")
    if not 1 <= days <= MAX_SERVER_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_SERVER_DAYS}")
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the CA key must be an EC or RSA key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    entries = list(dict.fromkeys(parse_name(n) for n in names))
    first = entries[0].value
    start = _now(now)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(first)[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - timedelta(minutes=5))
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(entries), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    return _key_pem(key), chain


# --- reading and checking ---------------------------------------------------------------


def load_chain(cert_pem: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file, leaf first, or a CertificateError."""
    if len(cert_pem) > MAX_PEM_BYTES:
        raise CertificateError("The certificate file is too large.")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise CertificateError(
            "The certificate is not in PEM format (a text file starting with "
            "-----BEGIN CERTIFICATE-----)."
        )
    try:
        return x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateError("The certificate file could not be read.") from None


def _load_key(key_pem: bytes) -> object:
    if len(key_pem) > MAX_PEM_BYTES:
        raise CertificateError("The key file is too large.")
    if b"PRIVATE KEY-----" not in key_pem:
        raise CertificateError(
            "The key is not a PEM private key (a text file starting with -----BEGIN ... "
            "PRIVATE KEY-----)."
        )
    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(
            "The private key is protected by a password; upload it without one."
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError("The private key could not be read.") from None


def _spki(public_key: object) -> bytes:
    if not isinstance(
        public_key,
        ec.EllipticCurvePublicKey
        | rsa.RSAPublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        raise CertificateError("The certificate's key type is not supported.")
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_sha256(cert_pem: bytes) -> bytes:
    """SHA-256 of the leaf's SubjectPublicKeyInfo (what Chromium's SPKI allow-list takes)."""
    return hashlib.sha256(_spki(load_chain(cert_pem)[0].public_key())).digest()


def fingerprint_sha256(cert_pem: bytes) -> str:
    """The leaf's SHA-256 fingerprint as colon-separated upper-case hex."""
    digest = load_chain(cert_pem)[0].fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def der(cert_pem: bytes) -> bytes:
    return load_chain(cert_pem)[0].public_bytes(serialization.Encoding.DER)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _san_entries(cert: x509.Certificate) -> tuple[list[str], list[IPAddress]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    ips = san.get_values_for_type(x509.IPAddress)
    return dns, [ip for ip in ips if isinstance(ip, IPAddress)]


def names_of(cert: x509.Certificate) -> tuple[str, ...]:
    dns, ips = _san_entries(cert)
    return tuple(dns) + tuple(str(ip) for ip in ips)


def covers(cert: x509.Certificate, name: str) -> bool:
    """Whether the certificate's SANs cover `name` (a wildcard covers one label)."""
    dns, ips = _san_entries(cert)
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        return address in ips
    wanted = name.rstrip(".").lower()
    for entry in dns:
        if entry == wanted:
            return True
        if entry.startswith("*.") and "." in wanted:
            head, _, rest = wanted.partition(".")
            if head and rest == entry[2:]:
                return True
    return False


def describe(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        names=names_of(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        self_signed=cert.subject == cert.issuer and _signed_by(cert, cert),
    )


def common_name(cert_pem: bytes) -> str:
    """The leaf's subject common name (else its whole subject)."""
    cert = load_chain(cert_pem)[0]
    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(found[0].value) if found else cert.subject.rfc4514_string()


def certificate_info(cert_pem: bytes) -> CertificateInfo:
    return describe(load_chain(cert_pem)[0])


def validate_pair(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    now: datetime,
    required_names: Sequence[str] = (),
) -> CertificateInfo:
    """Check a certificate chain and its key before use; CertificateError says what is wrong."""
    chain = load_chain(cert_pem)
    key = _load_key(key_pem)
    leaf = chain[0]
    public = getattr(key, "public_key", None)
    if public is None or _spki(public()) != _spki(leaf.public_key()):
        raise CertificateError("The private key does not belong to the certificate.")
    for position, (cert, issuer) in enumerate(itertools.pairwise(chain), start=1):
        if not _signed_by(cert, issuer):
            raise CertificateError(
                f"The certificates are not in order: certificate {position} is not signed by "
                f"certificate {position + 1}. Put the server certificate first, then each "
                "certificate that signed the one before it."
            )
    moment = _now(now)
    for position, cert in enumerate(chain, start=1):
        which = "The certificate" if position == 1 else f"Certificate {position} of the chain"
        if cert.not_valid_after_utc <= moment:
            raise CertificateError(
                f"{which} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC."
            )
        if cert.not_valid_before_utc > moment:
            raise CertificateError(
                f"{which} is not valid yet: it starts on "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."
            )
    missing = [name for name in required_names if not covers(leaf, name)]
    if missing:
        have = ", ".join(names_of(leaf)) or "none"
        raise CertificateError(
            f"The certificate does not cover {', '.join(missing)} (it covers: {have})."
        )
    return describe(leaf)


def _bundle(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a CA bundle, leaving out any that do not parse (system bundles hold
    a few old roots that recent `cryptography` warns about)."""
    end = b"-----END CERTIFICATE-----"
    found = []
    for block in pem.split(end):
        if b"-----BEGIN CERTIFICATE-----" not in block:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found.append(x509.load_pem_x509_certificate(block + end))
            except ValueError:
                continue
    return found


def publicly_trusted(cert_pem: bytes, roots_pem: bytes, *, now: datetime) -> bool:
    """Whether the chain verifies, for its first DNS name, against `roots_pem` (a CA bundle)."""
    from cryptography.x509 import verification

    try:
        chain = load_chain(cert_pem)
    except CertificateError:
        return False
    roots = _bundle(roots_pem)
    if not roots:
        return False
    dns, ips = _san_entries(chain[0])
    subject: verification.Subject
    if dns:
        first = dns[0]
        subject = x509.DNSName("x" + first[1:] if first.startswith("*.") else first)
    elif ips:
        subject = x509.IPAddress(ips[0])
    else:
        return False
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(roots))
            .time(_now(now))
            .build_server_verifier(subject)
        )
        verifier.verify(chain[0], chain[1:])
    except (verification.VerificationError, ValueError):
        return False
    return True


# --- installing -------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_pem(path: Path, data: bytes, *, private: bool) -> None:
    """Replace `path` atomically with `data` (0600 if private, else 0644)."""
    _write_atomic(path, data, 0o600 if private else 0o644)


def install_pair(
    tls_dir: Path, cert_pem: bytes, key_pem: bytes, *, stem: str = "uploaded"
) -> tuple[Path, Path]:
    """Write `<stem>-fullchain.pem` and `<stem>-key.pem` (0600) atomically; return their paths.

    The key is written first, so a reader that sees the new certificate also finds its key."""
    if not stem or "/" in stem or stem.startswith("."):
        raise ValueError("stem must be a plain file name prefix")
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path = tls_dir / f"{stem}-fullchain.pem"
    key_path = tls_dir / f"{stem}-key.pem"
    write_pem(key_path, key_pem, private=True)
    write_pem(cert_path, cert_pem, private=False)
    return cert_path, key_path
