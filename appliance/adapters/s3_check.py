"""A live check of an S3 endpoint before the appliance is pointed at it: through the minio SDK,
make sure the bucket exists, then PUT a small object with a pre-signed URL, GET it back with
another and compare, and delete it. That is exactly what browsers and the web service do later.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

CHECK_PREFIX = "appliance-setup-check/"


@dataclass(frozen=True, slots=True)
class S3Target:
    endpoint: str
    bucket: str
    region: str
    access_key: str
    secret_key: str


class S3CheckFailed(Exception):
    """The endpoint cannot be used. `field` names the input to blame (`endpoint`, `bucket`,
    `access_key` or `secret_key`); `message` is safe to show (no secrets, no signed URLs)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_CODE_FIELDS = {
    "InvalidAccessKeyId": ("access_key", "the store does not know this access key"),
    "SignatureDoesNotMatch": ("secret_key", "the store refused the secret key"),
    "AccessDenied": ("bucket", "this key may not use the bucket"),
    "AllAccessDisabled": ("bucket", "this key may not use the bucket"),
    "InvalidBucketName": ("bucket", "the store refused this bucket name"),
    "BucketAlreadyExists": ("bucket", "the bucket belongs to someone else"),
    "NoSuchBucket": ("bucket", "the bucket does not exist and could not be created"),
    "AuthorizationHeaderMalformed": ("region", "the store expects another region"),
    "InvalidRegion": ("region", "the store expects another region"),
}


_XML_CODE = re.compile(r"<Code>([A-Za-z]{1,64})</Code>")


def _refusal(code: str) -> S3CheckFailed:
    field, message = _CODE_FIELDS.get(code, ("endpoint", f"the store refused the request ({code})"))
    return S3CheckFailed(field, message)


def _check_credentials(client: Minio) -> None:
    """GET / answers with an error body (HEAD cannot), which tells a wrong key from a wrong
    secret. A key scoped to one bucket may not list buckets: that is fine here."""
    try:
        client.list_buckets()
    except S3Error as exc:
        if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise _refusal(exc.code) from None
    except InvalidResponseError as exc:
        # Some stores (rclone) send their XML error as text/xml, which the SDK does not parse.
        found = _XML_CODE.search(str(exc))
        if found and found.group(1) in ("InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise _refusal(found.group(1)) from None


def _round_trip(target: S3Target, timeout: float) -> None:
    url = urlsplit(target.endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        retries=urllib3.Retry(total=0, redirect=0),
        maxsize=2,
    )
    try:
        client = Minio(
            url.netloc,
            access_key=target.access_key,
            secret_key=target.secret_key,
            secure=url.scheme == "https",
            region=target.region,
            http_client=http,
        )
    except ValueError:
        raise S3CheckFailed("endpoint", "not a usable S3 endpoint URL") from None
    where = url.netloc
    try:
        _check_credentials(client)
        if not client.bucket_exists(target.bucket):
            client.make_bucket(target.bucket)
        key = CHECK_PREFIX + secrets.token_hex(8)
        body = b"appliance set-up check " + secrets.token_bytes(16)
        expires = timedelta(minutes=5)
        put = http.request(
            "PUT",
            client.presigned_put_object(target.bucket, key, expires),
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        if put.status != 200:
            raise S3CheckFailed(
                "endpoint", f"an upload with a pre-signed URL failed (HTTP {put.status})"
            )
        got = http.request("GET", client.presigned_get_object(target.bucket, key, expires))
        if got.status != 200 or got.data != body:
            raise S3CheckFailed(
                "endpoint",
                f"a download with a pre-signed URL did not return the upload (HTTP {got.status})",
            )
        client.remove_object(target.bucket, key)
    except S3Error as exc:
        raise _refusal(exc.code or "unknown") from None
    except InvalidResponseError as exc:
        found = _XML_CODE.search(str(exc))
        if found:
            raise _refusal(found.group(1)) from None
        raise S3CheckFailed("endpoint", f"{where} does not answer like an S3 store") from None
    except ServerError:
        raise S3CheckFailed("endpoint", f"{where} does not answer like an S3 store") from None
    except urllib3.exceptions.SSLError:
        raise S3CheckFailed("endpoint", f"{where}: its TLS certificate is not trusted") from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise S3CheckFailed("endpoint", f"no answer from {where}") from None
    finally:
        http.clear()


async def round_trip(target: S3Target, *, request_timeout: float = 5.0) -> None:
    """Raise `S3CheckFailed` unless the whole round trip works."""
    await asyncio.to_thread(_round_trip, target, request_timeout)
