"""Certificates (the box's CA, server certificates, checks of uploaded pairs) and the TlsManager
(renewal, names, hot reload of files a certbot renews, under a running HTTPS listener)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from appliance.adapters import certificates
from appliance.adapters.certificates import CertificateError, validate_pair
from appliance.errors import ConfigError
from appliance.services.tls import TlsManager
from tests.support import make_settings
from tests.tls_support import running_https, served_certificate, verified_handshake

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return certificates.create_ca("Test CA", now=NOW)


@pytest.fixture(scope="module")
def other_ca() -> tuple[bytes, bytes]:
    return certificates.create_ca("Other CA", now=NOW)


def issue(
    ca: tuple[bytes, bytes], names: list[str], *, now: datetime = NOW, days: int = 90
) -> tuple[bytes, bytes]:
    return certificates.issue_server_cert(ca[0], ca[1], names, now=now, days=days)


def leaf(cert_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(cert_pem)[0]


# --- certificates.py -------------------------------------------------------------------------


def test_ca_is_a_ca_for_ten_years(ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = ca
    cert = leaf(cert_pem)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert cert.not_valid_after_utc - NOW >= timedelta(days=3649)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    info = validate_pair(cert_pem, key_pem, now=NOW)
    assert info.self_signed and info.subject == info.issuer
    assert "CN=Test CA" in info.subject


def test_server_certificate_names_and_usage(ca: tuple[bytes, bytes]) -> None:
    names = ["box", "box.local", "localhost", "127.0.0.1", "::1", "192.0.2.7", "fd00::2"]
    key_pem, cert_pem = issue(ca, names, days=397)
    chain = x509.load_pem_x509_certificates(cert_pem)
    assert len(chain) == 2 and chain[1] == leaf(ca[1])  # the CA follows the leaf
    cert = chain[0]
    cert.verify_directly_issued_by(leaf(ca[1]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["box", "box.local", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address(n) for n in ("127.0.0.1", "::1", "192.0.2.7", "fd00::2")
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= timedelta(days=398)
    info = validate_pair(cert_pem, key_pem, now=NOW, required_names=names)
    assert set(info.names) == set(names) and not info.self_signed
    assert info.issuer == leaf(ca[1]).subject.rfc4514_string()


def test_issue_refuses_bad_input(ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="days"):
        issue(ca, ["box"], days=398)
    with pytest.raises(ValueError, match="at least one name"):
        issue(ca, [])
    with pytest.raises(CertificateError, match="neither a host name"):
        issue(ca, ["bad name!"])


def test_wildcards_cover_one_label(ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = issue(ca, ["*.example.org", "192.0.2.9"])
    validate_pair(cert_pem, key_pem, now=NOW, required_names=["chat.example.org", "192.0.2.9"])
    for name in ("example.org", "a.b.example.org", "192.0.2.10", "other.org"):
        with pytest.raises(CertificateError, match="does not cover") as caught:
            validate_pair(cert_pem, key_pem, now=NOW, required_names=[name])
        assert name in str(caught.value)


def test_mismatched_key(ca: tuple[bytes, bytes]) -> None:
    _, cert_pem = issue(ca, ["box"])
    other_key, _ = issue(ca, ["box"])
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        validate_pair(cert_pem, other_key, now=NOW)


def test_expired_and_not_yet_valid(ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = issue(ca, ["box"], now=NOW - timedelta(days=100), days=30)
    with pytest.raises(CertificateError, match="expired on"):
        validate_pair(cert_pem, key_pem, now=NOW)
    key_pem, cert_pem = issue(ca, ["box"], now=NOW + timedelta(days=10))
    with pytest.raises(CertificateError, match="not valid yet"):
        validate_pair(cert_pem, key_pem, now=NOW)


def test_unordered_chain(ca: tuple[bytes, bytes], other_ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = issue(ca, ["box"])
    only_leaf = cert_pem.split(b"-----END CERTIFICATE-----\n")[0] + b"-----END CERTIFICATE-----\n"
    validate_pair(only_leaf, key_pem, now=NOW)  # a lone leaf is fine
    with pytest.raises(CertificateError, match="not in order: certificate 1 is not signed by"):
        validate_pair(only_leaf + other_ca[1], key_pem, now=NOW)
    with pytest.raises(CertificateError, match="certificate 2 is not signed by certificate 3"):
        validate_pair(cert_pem + other_ca[1], key_pem, now=NOW)


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        (b"hello", b"x", "not in PEM format"),
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"x",
            "could not be read",
        ),
        (b"-----BEGIN CERTIFICATE-----\n" + b"A" * 300_000, b"x", "too large"),
        (None, b"garbage", "not a PEM private key"),
        (
            None,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "private key could not be read",
        ),
        (None, "encrypted", "protected by a password"),
    ],
)
def test_garbage_input(
    ca: tuple[bytes, bytes], cert: bytes | None, key: bytes | str, message: str
) -> None:
    good_key, good_cert = issue(ca, ["box"])
    if key == "encrypted":
        private = serialization.load_pem_private_key(good_key, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        key = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    assert isinstance(key, bytes)
    with pytest.raises(CertificateError, match=message) as caught:
        validate_pair(cert if cert is not None else good_cert, key, now=NOW)
    assert "Traceback" not in str(caught.value) and len(str(caught.value)) < 300


def test_install_pair_writes_atomically_with_private_key(
    ca: tuple[bytes, bytes], tmp_path: Path
) -> None:
    key_pem, cert_pem = issue(ca, ["box"])
    tls_dir = tmp_path / "tls"
    cert_path, key_path = certificates.install_pair(tls_dir, cert_pem, key_pem)
    assert (cert_path.name, key_path.name) == ("uploaded-fullchain.pem", "uploaded-key.pem")
    assert cert_path.read_bytes() == cert_pem and key_path.read_bytes() == key_pem
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o700
    key2, cert2 = issue(ca, ["box2"])
    assert certificates.install_pair(tls_dir, cert2, key2, stem="next")[0].name == (
        "next-fullchain.pem"
    )
    certificates.install_pair(tls_dir, cert2, key2)  # replaces
    assert cert_path.read_bytes() == cert2
    assert sorted(os.listdir(tls_dir)) == [
        "next-fullchain.pem",
        "next-key.pem",
        "uploaded-fullchain.pem",
        "uploaded-key.pem",
    ]
    with pytest.raises(ValueError, match="stem"):
        certificates.install_pair(tls_dir, cert2, key2, stem="../x")


def test_publicly_trusted_against_a_bundle(
    ca: tuple[bytes, bytes], other_ca: tuple[bytes, bytes]
) -> None:
    _, cert_pem = issue(ca, ["chat.example.org"])
    assert certificates.publicly_trusted(cert_pem, ca[1] + other_ca[1], now=NOW)
    assert not certificates.publicly_trusted(cert_pem, other_ca[1], now=NOW)


# --- TlsManager ---------------------------------------------------------------------------


class FakeWorld:
    """The clock and the box's addresses, as the manager sees them."""

    def __init__(self) -> None:
        self.now = NOW
        self.addresses = ["192.0.2.7", "fd00::2"]

    def manager(self, data_dir: Path, **tls: object) -> TlsManager:
        settings = make_settings(data_dir, {"tls": dict(tls)} if tls else None)
        return TlsManager(
            settings,
            now=lambda: self.now,
            addresses=lambda: list(self.addresses),
            hostname=lambda: "box",
        )


def current_leaf(manager: TlsManager) -> x509.Certificate:
    return leaf(manager.cert_path.read_bytes())


def test_internal_mode_makes_ca_and_certificate(tmp_path: Path) -> None:
    world = FakeWorld()
    manager = world.manager(tmp_path / "data", extra_names=["appliance.test", "bad name!"])
    assert manager.ensure()
    tls = tmp_path / "data" / "tls"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    for name, mode in (("ca-key.pem", 0o600), ("server-key.pem", 0o600)):
        assert stat.S_IMODE((tls / name).stat().st_mode) == mode
    assert (tls / "ca.pem").is_file() and (tls / "server.pem").is_file()
    assert manager.cert_path == tls / "server.pem" and manager.key_path == tls / "server-key.pem"
    assert manager.info is not None
    assert set(manager.info.names) == {
        "box",
        "box.local",
        "localhost",
        "127.0.0.1",
        "::1",
        "192.0.2.7",
        "fd00::2",
        "appliance.test",
    }
    assert manager.ca_pem == (tls / "ca.pem").read_bytes()
    assert not manager.publicly_trusted
    current_leaf(manager).verify_directly_issued_by(leaf(tls.joinpath("ca.pem").read_bytes()))
    # Nothing to do the second time, also for a second manager (another process).
    assert not manager.ensure()
    other = world.manager(tmp_path / "data", extra_names=["appliance.test"])
    assert other.ensure() and other.info == manager.info


def test_reissued_when_names_change_or_expiry_nears(tmp_path: Path) -> None:
    world = FakeWorld()
    manager = world.manager(tmp_path / "data", renew_before_days=30)
    manager.ensure()
    ca_before = manager.ca_pem
    first = current_leaf(manager)
    world.addresses = ["192.0.2.8"]  # DHCP gave the box another address
    assert manager.ensure()
    second = current_leaf(manager)
    assert second.serial_number != first.serial_number
    assert manager.info is not None and "192.0.2.8" in manager.info.names
    assert "192.0.2.7" not in manager.info.names
    assert manager.ca_pem == ca_before  # same CA: devices keep trusting it

    world.now = second.not_valid_after_utc - timedelta(days=31)
    assert not manager.ensure()  # not yet within renew_before_days
    world.now = second.not_valid_after_utc - timedelta(days=29)
    assert manager.ensure()
    third = current_leaf(manager)
    assert third.not_valid_after_utc > second.not_valid_after_utc
    assert manager.ca_pem == ca_before


def test_a_broken_or_foreign_certificate_is_replaced(tmp_path: Path) -> None:
    world = FakeWorld()
    manager = world.manager(tmp_path / "data")
    manager.ensure()
    manager.key_path.write_bytes(b"garbage")
    assert manager.ensure()
    validate_pair(manager.cert_path.read_bytes(), manager.key_path.read_bytes(), now=world.now)
    # A new CA (e.g. its key removed by hand): the server certificate follows.
    (tmp_path / "data" / "tls" / "ca-key.pem").unlink()
    assert manager.ensure()
    current_leaf(manager).verify_directly_issued_by(leaf(manager.ca_pem or b""))


async def test_periodic_check_follows_address_changes(tmp_path: Path) -> None:
    world = FakeWorld()
    manager = world.manager(tmp_path / "data", check_interval=0.05)
    await manager.start()
    try:
        generation = manager.generation
        world.addresses = ["192.0.2.99"]
        async with asyncio.timeout(10):
            await manager.wait_for_generation(generation)
        assert manager.info is not None and "192.0.2.99" in manager.info.names
    finally:
        await manager.stop()


def write_pair(cert_path: Path, key_path: Path, pair: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = pair
    certificates.write_pem(key_path, key_pem, private=True)
    certificates.write_pem(cert_path, cert_pem, private=False)


def test_files_mode_needs_usable_files(tmp_path: Path, ca: tuple[bytes, bytes]) -> None:
    with pytest.raises(ConfigError, match=r"cert_file and tls\.key_file"):
        FakeWorld().manager(tmp_path / "a", mode="files")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    manager = FakeWorld().manager(
        tmp_path / "b", mode="files", cert_file=str(cert), key_file=str(key)
    )
    with pytest.raises(ConfigError, match="no usable TLS certificate"):
        manager.ensure()
    write_pair(cert, key, issue(ca, ["box"], now=NOW - timedelta(days=100), days=30))
    with pytest.raises(ConfigError, match="expired"):
        manager.ensure()
    write_pair(cert, key, issue(ca, ["box"]))
    assert manager.ensure()
    assert manager.cert_path == cert and manager.key_path == key
    # The chain's own root is offered for trust when it is not a public one.
    assert manager.ca_pem == ca[1] and not manager.publicly_trusted
    # A broken renewal keeps the certificate in use.
    key.write_bytes(b"half written")
    assert not manager.ensure()
    assert manager.info is not None and manager.info.names == ("box",)


@pytest.mark.timeout(60)
async def test_files_mode_hot_reload_under_a_running_listener(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = certificates.create_ca("Renewals CA", now=now)
    cert, key = tmp_path / "live" / "fullchain.pem", tmp_path / "live" / "privkey.pem"
    cert.parent.mkdir()
    write_pair(cert, key, issue(ca, ["localhost", "127.0.0.1", "first.test"], now=now))
    tls = {"mode": "files", "cert_file": str(cert), "key_file": str(key), "check_interval": 0.05}
    async with running_https(tmp_path / "data", {"tls": tls}) as server:
        manager = server.app.container.tls
        before = await verified_handshake(server.https_port, ca[1], "first.test")
        generation = manager.generation
        # What certbot does on renewal: new files, same paths.
        write_pair(cert, key, issue(ca, ["localhost", "127.0.0.1", "second.test"], now=now))
        async with asyncio.timeout(10):
            await manager.wait_for_generation(generation)
        after = await verified_handshake(server.https_port, ca[1], "second.test")
        assert after.serial_number != before.serial_number
        assert (await served_certificate(server.https_port)).serial_number == after.serial_number
