"""AWS Signature Version 4 query-string presigning for S3.

Written here because the minio SDK's presigned PUT signs only `host`; ours also signs
`content-length` and `content-type`, so the store itself refuses a body of another size or type.
Checked against AWS's published presigned-URL example and against the minio SDK's own presigner
(tests/test_sigv4.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(value: str, *, keep_slash: bool) -> str:
    return quote(value, safe="/-_.~" if keep_slash else "-_.~")


def signing_key(secret_key: str, date: str, region: str, service: str = "s3") -> bytes:
    k_date = _hmac(f"AWS4{secret_key}".encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def host_header(base_url: str) -> str:
    """The Host header a client will send to `base_url` (no port when it is the default)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def presign(
    credentials: Credentials,
    method: str,
    base_url: str,
    path: str,
    *,
    expires: int,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    now: datetime | None = None,
) -> str:
    """A presigned URL for `method` on `base_url` + `path` (path-style: /bucket/key).

    `headers` (besides Host) become signed headers: the request must carry exactly these values.
    """
    if not 1 <= expires <= 7 * 86_400:
        raise ValueError("expires must be 1 s to 7 days")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    scope = f"{date}/{credentials.region}/s3/aws4_request"
    signed = {"host": host_header(base_url)}
    for name, value in (headers or {}).items():
        signed[name.lower()] = " ".join(str(value).split())
    signed_names = ";".join(sorted(signed))
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{credentials.access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": signed_names,
        **(query or {}),
    }
    canonical_query = "&".join(
        f"{_encode(k, keep_slash=False)}={_encode(v, keep_slash=False)}"
        for k, v in sorted(params.items())
    )
    base_path = urlsplit(base_url).path.rstrip("/")
    canonical_uri = _encode(base_path + path, keep_slash=True)
    canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in sorted(signed))
    canonical_request = "\n".join(
        [method, canonical_uri, canonical_query, canonical_headers, signed_names, UNSIGNED_PAYLOAD]
    )
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_key, date, credentials.region)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    origin = base_url.rstrip("/")
    origin = origin[: len(origin) - len(base_path)] if base_path else origin
    return f"{origin}{canonical_uri}?{canonical_query}&X-Amz-Signature={signature}"
