"""The web service over HTTPS and plain HTTP in one process (the real `serve_app` on loopback):
certificates that verify against the CA served at /trust, plain HTTP for loopback only, the
redirect for everyone else (crafted ASGI scopes: no traffic leaves loopback), and /trust."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from appliance.adapters import certificates, netinfo
from appliance.transport.server import PLAIN_HTTP_PATHS, PlainHttpGuard
from tests.support import PASSWORD
from tests.tls_support import HttpsServer, https_client, running_https, verified_handshake


@pytest.fixture
async def box(tmp_path: Path) -> Any:
    async with running_https(tmp_path / "data", {"tls": {"extra_names": ["appliance.test"]}}) as s:
        yield s


async def plain_get(server: HttpsServer, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as http:
        return await http.get(path, **kwargs)


async def test_https_verifies_against_the_ca_from_trust(box: HttpsServer) -> None:
    # A device's first step: fetch the CA over plain HTTP.
    pem = await plain_get(box, "/trust/ca.pem")
    assert pem.status_code == 200
    assert pem.headers["content-type"] == "application/x-pem-file"
    ca_pem = pem.content
    der = await plain_get(box, "/trust/ca.crt")
    assert der.headers["content-type"] == "application/x-x509-ca-cert"
    assert x509.load_der_x509_certificate(der.content) == x509.load_pem_x509_certificate(ca_pem)
    # Then HTTPS verifies for every name the box goes by (all connections go to 127.0.0.1).
    names = ["localhost", "127.0.0.1", "appliance.test", *netinfo.all_addresses()]
    for name in names:
        await verified_handshake(box.https_port, ca_pem, name)
    for host in ("localhost", "127.0.0.1"):
        async with https_client(box, ca_pem, host) as client:
            response = await client.get("/api/site")
            assert response.status_code == 200, response.text
            assert response.json()["setup_pending"] is False
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        await verified_handshake(box.https_port, ca_pem, "not-mine.example")


async def test_plain_http_from_loopback_serves_the_app(box: HttpsServer) -> None:
    assert (await plain_get(box, "/api/site")).status_code == 200
    assert (await plain_get(box, "/api/me")).json()["error"]["code"] == "token_missing"
    await box.app.container.auth.create_user("ann", PASSWORD, is_admin=False)
    async with httpx.AsyncClient(base_url=box.http_url) as http:
        login = await http.post("/api/auth/login", json={"username": "ann", "password": PASSWORD})
        assert login.status_code == 200
        # TURN over TLS is offered with the box's certificate.
        turn = await http.get(
            "/api/turn", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
    tls_port = box.settings.config.turn.tls_port
    assert f"turns:127.0.0.1:{tls_port}?transport=tcp" in turn.json()["iceServers"][1]["urls"]


# --- the guard on plain HTTP, with crafted scopes -----------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.app_calls = 0

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.app_calls += 1

    async def receive(self) -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])


def scope(
    path: str = "/",
    *,
    host: bytes | None = b"appliance.test:8080",
    client: tuple[str, int] | None = ("192.0.2.50", 50000),
    kind: str = "http",
    scheme: str = "http",
    query: bytes = b"",
) -> dict[str, Any]:
    headers = [(b"host", host)] if host is not None else []
    return {
        "type": kind,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "client": client,
        "server": ("192.0.2.1", 8080),
    }


async def guard(https_port: int, request: dict[str, Any]) -> Recorder:
    recorder = Recorder()
    await PlainHttpGuard(recorder.app, https_port)(request, recorder.receive, recorder.send)
    return recorder


@pytest.mark.parametrize(
    ("host", "path", "query", "location"),
    [
        (b"appliance.test:8080", "/rooms/1", b"x=1", "https://appliance.test:8443/rooms/1?x=1"),
        (b"Box.Local", "/", b"", "https://box.local:8443/"),
        (b"192.0.2.1:8080", "/a%20b", b"", "https://192.0.2.1:8443/a%20b"),
        (b"[fd00::2]:8080", "/", b"", "https://[fd00::2]:8443/"),
        (None, "/", b"", "https://192.0.2.1:8443/"),
    ],
)
async def test_other_clients_are_redirected_to_https(
    host: bytes | None, path: str, query: bytes, location: str
) -> None:
    sent = await guard(8443, scope(path, host=host, query=query))
    assert sent.app_calls == 0
    assert sent.status == 308
    assert sent.headers[b"location"].decode() == location


async def test_redirect_leaves_out_port_443_and_refuses_bad_hosts() -> None:
    assert (await guard(443, scope())).headers[b"location"] == b"https://appliance.test/"
    for bad in (b"evil.example/x", b"a b", b"x" * 300, b"[zz]:80", b"host:port", b"\xff"):
        sent = await guard(8443, scope(host=bad))
        assert sent.status == 400, bad
        assert b"location" not in sent.headers


async def test_trust_and_health_stay_on_plain_http() -> None:
    for path in PLAIN_HTTP_PATHS:
        assert (await guard(8443, scope(path))).app_calls == 1
    assert (await guard(8443, scope("/trust/other"))).status == 308


async def test_what_passes_the_guard() -> None:
    local: list[tuple[str, int]] = [("127.0.0.1", 1), ("127.8.9.10", 1), ("::1", 1)]
    for client in [*local, ("::ffff:127.0.0.1", 1)]:
        assert (await guard(8443, scope(client=client))).app_calls == 1, client
    assert (await guard(8443, scope(scheme="https"))).app_calls == 1
    assert (await guard(0, scope())).app_calls == 1  # no HTTPS listener: plain HTTP for all
    assert (await guard(8443, {"type": "lifespan"})).app_calls == 1
    others: list[tuple[str, int] | None] = [None, ("unix-socket", 0), ("::ffff:192.0.2.50", 1)]
    for other in others:
        assert (await guard(8443, scope(client=other))).status == 308, other


async def test_websockets_over_plain_http_are_refused_for_others() -> None:
    sent = await guard(8443, scope("/socket.io/", kind="websocket", scheme="ws"))
    assert sent.app_calls == 0
    assert sent.sent == [{"type": "websocket.close", "code": 1008, "reason": "use wss://"}]
    local = scope("/socket.io/", kind="websocket", scheme="ws", client=("127.0.0.1", 5))
    assert (await guard(8443, local)).app_calls == 1
    assert (await guard(8443, scope(kind="websocket", scheme="wss"))).app_calls == 1


# --- /trust --------------------------------------------------------------------------------


async def test_trust_page_over_http(box: HttpsServer) -> None:
    response = await plain_get(box, "/trust", headers={"Host": f"appliance.test:{box.http_port}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'self'
    page = response.text
    assert "<script" not in page.lower()
    url = f"https://appliance.test:{box.https_port}/"
    assert f'<a href="{url}">{url}</a>' in page
    assert re.search(r"<svg[^>]*class=\"segno\"", page), "QR code"
    assert f"QR code: {url}" in page
    ca_pem = (box.tls_dir / "ca.pem").read_bytes()
    digest = x509.load_pem_x509_certificate(ca_pem).fingerprint(hashes.SHA256())
    assert ":<wbr>".join(f"{b:02X}" for b in digest) in page
    for platform in ("iPhone and iPad", "Android", "Windows", "macOS", "Linux", "Firefox"):
        assert f"<summary>{platform}" in page, platform
    assert "Certificate Trust Settings" in page  # iOS full trust
    assert 'href="/trust/ca.crt"' in page and 'href="/trust/ca.pem"' in page
    # Over HTTPS too, the same page.
    async with https_client(box, ca_pem) as client:
        again = await client.get("/trust")
    assert again.status_code == 200 and "Download the certificate" in again.text


async def test_trust_endpoints_refuse_what_they_must(box: HttpsServer) -> None:
    # Malformed or oversized Host: a typed error, nothing reflected.
    for host in ("bad host", "a." * 1000 + "b", "[::1"):
        response = await plain_get(box, "/trust", headers={"Host": host})
        assert response.status_code == 400, host
        assert response.json()["error"]["code"] == "invalid_request"
        assert host not in response.text
    # Other methods and bodies: refused with the usual error shape.
    async with httpx.AsyncClient(base_url=box.http_url) as http:
        for path in ("/trust", "/trust/ca.crt", "/trust/ca.pem"):
            posted = await http.post(path, content=b"x" * 100_000)
            assert posted.status_code in (405, 413), path
            assert "code" in posted.json()["error"]
    # Public by design: credentials neither needed nor looked at; replaying changes nothing.
    first = await plain_get(box, "/trust/ca.crt", params={"junk": "1" * 500})
    again = await plain_get(box, "/trust/ca.crt", headers={"Authorization": "Bearer nonsense"})
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert (await plain_get(box, "/trust/ca.der")).status_code == 404


async def test_trust_page_with_a_publicly_trusted_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-in for a public CA: a root listed in the "system" bundle.
    from datetime import UTC, datetime

    root_key, root = certificates.create_ca("Stand-in Public Root")
    key_pem, chain = certificates.issue_server_cert(
        root_key, root, ["chat.example.org", "localhost"], now=datetime.now(UTC)
    )
    leaf_only = x509.load_pem_x509_certificates(chain)[0].public_bytes(serialization.Encoding.PEM)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(root)
    monkeypatch.setattr("appliance.services.tls.SYSTEM_ROOTS", (bundle,))
    paths = certificates.install_pair(tmp_path / "certs", leaf_only, key_pem, stem="site")
    tls = {"mode": "files", "cert_file": str(paths[0]), "key_file": str(paths[1])}
    async with running_https(tmp_path / "data", {"tls": tls}) as server:
        page = await plain_get(server, "/trust", headers={"Host": "chat.example.org"})
        assert "Nothing to install" in page.text
        assert "/trust/ca.crt" not in page.text
        missing = await plain_get(server, "/trust/ca.crt")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        await verified_handshake(server.https_port, root, "chat.example.org")
