"""The object store: a pre-signed PUT and GET of a small object (the way browsers upload and
download), then the object is deleted through the S3 API."""

from __future__ import annotations

import re
import secrets

import aiohttp
from yarl import URL

from appliance.adapters.object_store import MinioObjectStore, StoreUnavailable
from appliance.doctor.model import Check, DoctorContext, fail, ok, skip

NAME = "store"
KEY_PREFIX = "doctor/"
_CODE = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")


def _code(body: bytes) -> str:
    match = _CODE.search(body)
    return match.group(1).decode() if match else ""


def _start_fix(managed: str) -> str:
    if managed == "none":
        return "Check that the external S3 endpoint (storage.endpoint) is up and reachable."
    return (
        "Start the store service (systemctl start appliance-store, or appliance up) and look "
        "at its log."
    )


def _refused(status: int, code: str, managed: str) -> Check:
    what = f"HTTP {status}" + (f" {code}" if code else "")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status == 403:
        fix = (
            "storage.access_key and storage.secret_key must be the store's own: the managed "
            "store reads them when it starts, so restart it after changing them."
            if managed != "none"
            else "Set storage.access_key and storage.secret_key to a key of the external store."
        )
        return fail(NAME, f"the store refused our signed request ({what})", fix)
    if code == "NoSuchBucket":
        return fail(
            NAME,
            "the bucket does not exist",
            "Restart the web service: it creates the bucket (storage.bucket) when it starts.",
        )
    return fail(NAME, f"the store answered {what}", _start_fix(managed))


async def check_store(context: DoctorContext) -> list[Check]:
    config = context.settings.config.storage
    if config.managed == "none" and not config.endpoint:
        return [skip(NAME, "no object store configured (storage.managed = none, no endpoint)")]
    base = config.internal_url
    store = MinioObjectStore(config)
    key = f"{KEY_PREFIX}{secrets.token_hex(8)}.txt"
    body = b"appliance doctor " + secrets.token_hex(8).encode()
    put_url = store.presign_put(base, key, "text/plain", len(body), 60)
    get_url = store.presign_get(base, key, 60, "text/plain", "inline")
    timeout = aiohttp.ClientTimeout(total=config.request_timeout * 2)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            headers = {"Content-Type": "text/plain"}
            async with http.put(URL(put_url, encoded=True), data=body, headers=headers) as put:
                if put.status != 200:
                    return [_refused(put.status, _code(await put.read()), config.managed)]
            try:
                async with http.get(URL(get_url, encoded=True)) as got:
                    fetched = await got.read()
                    if got.status != 200:
                        return [_refused(got.status, _code(fetched), config.managed)]
            finally:
                await store.remove(key)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        kind = type(exc).__name__
        return [
            fail(NAME, f"the store at {base} does not answer ({kind})", _start_fix(config.managed))
        ]
    except StoreUnavailable:
        return [
            fail(
                NAME,
                "the test object was written and read but could not be deleted",
                "Check the store's log; the access key may lack the right to delete.",
            )
        ]
    if fetched != body:
        return [
            fail(
                NAME,
                "the object read back differs from the one written",
                "The store is damaged or something in front of it changes data: check its log "
                "and the disk of the data dir.",
            )
        ]
    return [ok(NAME, f"pre-signed upload, download and delete of a test object at {base}")]
