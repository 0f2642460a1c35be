"""`GET /trust`: how to trust the box's certificate (a server-rendered page that needs no
JavaScript), and its CA certificate at `/trust/ca.crt` (DER) and `/trust/ca.pem` (PEM).

Reachable over plain HTTP from anywhere (see transport/server.py): it is how a device gets to
trust the HTTPS listener in the first place.
"""

from __future__ import annotations

from html import escape

from quart import Blueprint, Response, request

from appliance.adapters import certificates
from appliance.errors import AppError, ErrorCode
from appliance.services.tls import TlsManager
from appliance.transport.hosts import host_of, https_base
from appliance.transport.http.deps import container

blueprint = Blueprint("trust", __name__)

CA_MIME = "application/x-x509-ca-cert"
FILE_NAME = "appliance-ca"


def _tls() -> TlsManager:
    return container().tls


def _ca_pem() -> bytes:
    pem = _tls().ca_pem
    if pem is None:
        raise AppError(ErrorCode.NOT_FOUND, "this appliance has no certificate authority to trust")
    return pem


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.get("/trust/ca.crt")
async def ca_der() -> Response:
    """The CA certificate, DER: the form every platform's installer takes (Windows, macOS, iOS,
    Android and Firefox all accept a DER .crt served as application/x-x509-ca-cert)."""
    body = certificates.der(_ca_pem())
    response = Response(body, content_type=CA_MIME)
    response.headers["Content-Disposition"] = f'inline; filename="{FILE_NAME}.crt"'
    return _no_store(response)


@blueprint.get("/trust/ca.pem")
async def ca_pem() -> Response:
    """The CA certificate, PEM: for Linux (`update-ca-certificates` wants PEM) and tools."""
    response = Response(_ca_pem(), content_type="application/x-pem-file")
    response.headers["Content-Disposition"] = f'attachment; filename="{FILE_NAME}.pem"'
    return _no_store(response)


def _box_url() -> str:
    web = container().settings.config.web
    host = host_of(request.headers.get("Host", ""))
    if host is None:
        raise AppError(ErrorCode.INVALID_REQUEST, "the Host header is not a host name or address")
    if web.https_port <= 0:
        return f"http://{host}:{web.port}/"
    return https_base(host, web.https_port) + "/"


def qr_svg(text: str) -> str:
    import segno  # only when the page is asked for: not held by the idle web process

    return str(
        segno.make(text, error="m").svg_inline(
            scale=5, dark="#151a24", light="#ffffff", border=3, title="QR code: " + text
        )
    )


@blueprint.get("/trust")
async def trust_page() -> Response:
    """The page: the CA download and fingerprint, instructions per platform, and a QR code of
    the box's HTTPS address for phones."""
    tls = _tls()
    url = _box_url()
    ca = tls.ca_pem
    parts = [_HEAD, "<main>", "<h1>Trust this appliance</h1>"]
    if tls.publicly_trusted:
        parts.append(
            "<p class=ok>This appliance uses a certificate that your devices already trust. "
            "Nothing to install: just open the address below.</p>"
        )
    elif ca is None:
        info = tls.info
        issuer = escape(info.issuer) if info else "an unknown issuer"
        parts.append(
            f"<p>This appliance uses a certificate issued by <b>{issuer}</b>. If your devices "
            "warn about it, ask your administrator how to trust that issuer.</p>"
        )
    else:
        fingerprint = certificates.fingerprint_sha256(ca).replace(":", ":<wbr>")
        name = escape(certificates.common_name(ca))
        parts.append(
            "<p>This appliance made its own certificate authority. Install its certificate "
            "once on each device, and the browser will trust the appliance's secure "
            "(https) address. Calls with camera and microphone need it.</p>"
            '<p class=actions><a class=button href="/trust/ca.crt">'
            "Download the certificate</a> "
            '<a class=plain href="/trust/ca.pem" download>PEM file (Linux)</a></p>'
            f"<p class=small>Certificate: <b>{name}</b><br>SHA-256 fingerprint, to compare "
            f"with what your device shows:</p><p class=fp><code>{fingerprint}</code></p>"
        )
        parts.append(_INSTRUCTIONS)
    parts.append(
        "<section class=card><h2>Then open</h2>"
        f'<p class=url><a href="{escape(url)}">{escape(url)}</a></p>'
        f"<figure class=qr>{qr_svg(url)}<figcaption>Scan with a phone's camera</figcaption>"
        "</figure></section>"
    )
    parts.append("</main></body></html>")
    response = Response("".join(parts), content_type="text/html; charset=utf-8")
    return _no_store(response)


_HEAD = """<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>Trust this appliance</title>
<style>
:root{color-scheme:light dark;--bg:#f4f5f8;--surface:#fff;--border:#e3e6ec;--text:#151a24;
--text-2:#4b5363;--primary:#4f46e5;--primary-hover:#4338ca;--ok:#16a34a;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,
sans-serif}
@media (prefers-color-scheme:dark){:root{--bg:#0f1218;--surface:#171b23;--border:#2a303c;
--text:#eef0f4;--text-2:#b5bcc9;--primary:#6d66f0;--primary-hover:#7f79f3}}
body{margin:0;background:var(--bg);color:var(--text);line-height:1.5}
main{max-width:44rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.1rem;margin:0 0 .5rem}
a{color:var(--primary)}
.button{display:inline-block;background:var(--primary);color:#fff;text-decoration:none;
padding:.65rem 1.1rem;border-radius:10px;font-weight:600;margin:.25rem .5rem .25rem 0}
.button:hover{background:var(--primary-hover)}.plain{display:inline-block;margin:.25rem 0}
.small{color:var(--text-2);font-size:.9rem;margin-bottom:.25rem}
.fp code{display:block;font-size:.8rem;background:var(--surface);
border:1px solid var(--border);border-radius:8px;padding:.5rem .6rem}
.ok{border-left:4px solid var(--ok);padding-left:.75rem}
details,.card{background:var(--surface);border:1px solid var(--border);border-radius:10px;
padding:.6rem 1rem;margin:.5rem 0}
summary{cursor:pointer;font-weight:600;padding:.2rem 0}
details ol{padding-left:1.2rem;margin:.5rem 0}details li{margin:.25rem 0}
.card{margin-top:1.5rem;padding:1rem}.url{font-size:1.1rem;word-break:break-all}
.qr{margin:.5rem 0 0;text-align:center}.qr svg{max-width:100%;height:auto;border-radius:6px}
.qr figcaption{color:var(--text-2);font-size:.9rem}
</style></head><body>"""

_INSTRUCTIONS = """<h2>Install it</h2>
<details><summary>iPhone and iPad</summary><ol>
<li>Open this page in Safari and tap <b>Download the certificate</b>; allow the download.</li>
<li>Open <b>Settings</b>, tap <b>Profile Downloaded</b>, then <b>Install</b> (enter your
passcode).</li>
<li>Then turn on full trust: <b>Settings &gt; General &gt; About &gt;
Certificate Trust Settings</b>, and switch on the appliance's certificate.</li></ol></details>
<details><summary>Android</summary><ol>
<li>Tap <b>Download the certificate</b>.</li>
<li>Open <b>Settings &gt; Security &gt; More security settings &gt; Encryption &amp;
credentials &gt; Install a certificate &gt; CA certificate</b> (the words differ a little
between phones: search the settings for &ldquo;CA certificate&rdquo;).</li>
<li>Tap <b>Install anyway</b> and pick the downloaded <code>appliance-ca.crt</code>.</li>
</ol></details>
<details><summary>Windows</summary><ol>
<li>Download the certificate and open the file.</li>
<li>Click <b>Install Certificate&hellip;</b>, choose <b>Current User</b>, then
<b>Place all certificates in the following store</b> &gt; <b>Browse</b> &gt;
<b>Trusted Root Certification Authorities</b>; finish and confirm the warning.</li>
<li>Restart the browser. (Edge and Chrome use this store; Firefox: see below.)</li>
</ol></details>
<details><summary>macOS</summary><ol>
<li>Download the certificate and open it: Keychain Access adds it to the
<b>login</b> keychain.</li>
<li>Double-click it there, open <b>Trust</b>, set <b>When using this certificate</b> to
<b>Always Trust</b>, close the window and confirm with your password.</li>
</ol></details>
<details><summary>Linux (Chrome, Chromium)</summary><ol>
<li>Chrome: <b>Settings &gt; Privacy and security &gt; Security &gt; Manage certificates
&gt; Custom &gt; Installed by you &gt; Import</b> (older versions: <b>Authorities &gt;
Import</b>), pick the file and tick <b>Trust this certificate for identifying
websites</b>.</li>
<li>For the whole system (Debian, Ubuntu): download the PEM file, then
<code>sudo cp appliance-ca.pem /usr/local/share/ca-certificates/appliance-ca.crt &amp;&amp;
sudo update-ca-certificates</code>.</li>
</ol></details>
<details><summary>Firefox (every system)</summary><ol>
<li>Firefox keeps its own list. Click <b>Download the certificate</b> in Firefox: it asks
whether to trust it; tick <b>Trust this CA to identify websites</b> and click <b>OK</b>.</li>
<li>Or: <b>Settings &gt; Privacy &amp; Security &gt; Certificates &gt; View
Certificates &gt; Authorities &gt; Import</b>.</li>
</ol></details>"""
