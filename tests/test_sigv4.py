"""The SigV4 presigner against AWS's published example and the minio SDK's own presigner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from minio import Minio

from appliance.adapters.sigv4 import Credentials, host_header, presign

AWS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_aws_documented_presigned_get() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)", example URL.
    url = presign(
        AWS,
        "GET",
        "https://examplebucket.s3.amazonaws.com",
        "/test.txt",
        expires=86400,
        now=datetime(2013, 5, 24, tzinfo=UTC),
    )
    assert url == (
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )


@pytest.mark.parametrize(
    ("endpoint", "secure", "key"),
    [
        ("127.0.0.1:9000", False, "room/1/abc"),
        ("chat.example.org", True, "a b/ü?&=.txt"),
        ("localhost:8080", False, "x"),
    ],
)
def test_matches_minio_sdk_for_host_only_signing(endpoint: str, secure: bool, key: str) -> None:
    when = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    client = Minio(endpoint, "AK", "SK/secret+key", secure=secure, region="us-east-1")
    theirs = client.get_presigned_url(
        "PUT", "bucket", key, expires=timedelta(seconds=300), request_date=when
    )
    scheme = "https" if secure else "http"
    ours = presign(
        Credentials("AK", "SK/secret+key"),
        "PUT",
        f"{scheme}://{endpoint}",
        f"/bucket/{key}",
        expires=300,
        now=when,
    )
    assert parse_qs(urlsplit(ours).query) == parse_qs(urlsplit(theirs).query)
    assert urlsplit(ours).path == urlsplit(theirs).path


def test_signed_headers_are_listed_and_change_the_signature() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    args = (Credentials("AK", "SK"), "PUT", "http://h:1", "/b/k")
    a = presign(
        *args, expires=60, now=when, headers={"Content-Type": "image/png", "Content-Length": "10"}
    )
    b = presign(
        *args, expires=60, now=when, headers={"Content-Type": "image/png", "Content-Length": "11"}
    )
    qa = parse_qs(urlsplit(a).query)
    assert qa["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert qa["X-Amz-Signature"] != parse_qs(urlsplit(b).query)["X-Amz-Signature"]


def test_host_header_rules() -> None:
    assert host_header("http://box:80") == "box"
    assert host_header("https://box:443/x") == "box"
    assert host_header("http://box:8080") == "box:8080"
    assert host_header("http://[::1]:9000") == "[::1]:9000"


def test_expiry_bounds() -> None:
    with pytest.raises(ValueError, match="expires"):
        presign(AWS, "GET", "http://h", "/b/k", expires=0)
    with pytest.raises(ValueError, match="expires"):
        presign(AWS, "GET", "http://h", "/b/k", expires=8 * 86400)
