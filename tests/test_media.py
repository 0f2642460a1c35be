"""Media sharing against a real `rclone serve s3`: pre-signed uploads the store itself checks,
the notify check, downloads, cleanup and a store that is down."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from minio import Minio
from minio.error import S3Error

from appliance.adapters.sigv4 import Credentials, presign
from tests.store_support import running_store, storage_overrides
from tests.support import RunningServer, make_settings, running_server
from tests.test_chat import Person, person

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class World:
    def __init__(self, server: RunningServer, store: subprocess.Popen[bytes]) -> None:
        self.server = server
        self.store = store
        config = server.settings.config.storage
        self.minio = Minio(
            config.address,
            config.access_key,
            config.secret_key.get_secret_value(),
            secure=False,
            region=config.region,
        )
        self.bucket = config.bucket


@asynccontextmanager
async def world(tmp_path: Path, **storage: Any) -> AsyncIterator[World]:
    overrides: dict[str, Any] = {"storage": storage_overrides(**storage)}
    make_settings(tmp_path / "d", overrides)
    settings = make_settings(tmp_path / "d", overrides)
    async with (
        running_store(settings) as store,
        running_server(tmp_path / "d", overrides) as server,
    ):
        yield World(server, store)


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as w:
        yield w


async def assert_gone(w: World, key: str) -> None:
    with pytest.raises(S3Error) as info:
        await asyncio.to_thread(w.minio.stat_object, w.bucket, key)
    assert info.value.code in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


async def pair(w: World) -> tuple[Person, Person, int]:
    alice = await person(w.server, "alice")
    bob = await person(w.server, "bob")
    room = await alice.direct(bob)
    await bob.sock.next("room:joined")
    return alice, bob, room


async def ask_upload(
    who: Person, room: int, *, size: int = len(PNG), ctype: str = "image/png", name: str = "a.png"
) -> Any:
    return await who.post(
        "/api/media/uploads",
        {"room_id": room, "filename": name, "content_type": ctype, "size": size},
    )


async def put(w: World, url: str, body: bytes, ctype: str = "image/png") -> httpx.Response:
    return await w.server.http.put(url, content=body, headers={"Content-Type": ctype})


async def test_full_flow_between_two_users(media: World) -> None:
    alice, bob, room = await pair(media)
    asked = await ask_upload(alice, room)
    assert asked.status_code == 201, asked.text
    body = asked.json()
    assert body["upload"]["method"] == "PUT"
    assert body["upload"]["headers"] == {
        "Content-Type": "image/png",
        "Content-Length": str(len(PNG)),
    }
    assert body["expires_in"] == 300
    url = body["upload"]["url"]
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == media.server.url  # same origin as the web UI
    query = parse_qs(parts.query)
    assert query["X-Amz-SignedHeaders"] == ["content-length;content-type;host"]
    assert int(query["X-Amz-Expires"][0]) <= 300
    assert parts.path.startswith(f"/{media.bucket}/rooms/{room}/")  # the server chose the key
    assert (await put(media, url, PNG)).status_code == 200
    ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"], "caption": "look"})
    assert ack["ok"], ack
    message = ack["message"]
    assert message["text"] == "look"
    assert message["attachment"] == {
        "media_id": body["media_id"],
        "filename": "a.png",
        "content_type": "image/png",
        "size": len(PNG),
    }
    assert await bob.sock.next("chat:message") == message
    # Download: a redirect to a short pre-signed GET that serves the bytes.
    got = await bob.get(f"/api/media/{body['media_id']}")
    assert got.status_code == 302
    location = got.headers["Location"]
    assert "X-Amz-Signature=" in location
    assert int(parse_qs(urlsplit(location).query)["X-Amz-Expires"][0]) <= 300
    file = await media.server.http.get(location)
    assert file.status_code == 200
    assert file.content == PNG
    assert file.headers["content-type"] == "image/png"
    assert file.headers["content-disposition"].startswith("inline")
    assert file.headers["x-content-type-options"] == "nosniff"
    as_json = await bob.get(
        f"/api/media/{body['media_id']}", headers={"Accept": "application/json"}
    )
    assert as_json.json()["url"].startswith(media.server.url)
    history = (await bob.get(f"/api/rooms/{room}/messages")).json()["messages"]
    assert history[0]["attachment"]["media_id"] == body["media_id"]
    health = (await media.server.http.get("/healthz")).json()
    assert health["services"]["store"]["state"] == "up"


async def test_store_refuses_what_was_not_signed(media: World) -> None:
    alice, _bob, room = await pair(media)
    body = (await ask_upload(alice, room)).json()
    url = body["upload"]["url"]
    assert (await put(media, url, PNG + b"x")).status_code == 403  # bigger
    assert (await put(media, url, PNG[:-1])).status_code == 403  # smaller
    assert (await put(media, url, PNG, "text/html")).status_code == 403  # other type
    other_key = url.replace(body["media_id"], "someone-elses-key")
    assert (await put(media, other_key, PNG)).status_code == 403
    head, _, signature = url.rpartition("X-Amz-Signature=")
    tampered = head + "X-Amz-Signature=" + ("0" if signature[0] != "0" else "1") + signature[1:]
    assert (await put(media, tampered, PNG)).status_code == 403
    # Nothing was stored by any of those.
    ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert ack["error"]["code"] == "upload_missing"
    # The right body still works with the same URL.
    assert (await put(media, url, PNG)).status_code == 200


async def test_expired_url_refused(media: World) -> None:
    config = media.server.settings.config.storage
    credentials = Credentials(config.access_key, config.secret_key.get_secret_value())
    url = presign(
        credentials,
        "PUT",
        media.server.url,
        f"/{media.bucket}/rooms/1/old",
        expires=60,
        headers={"Content-Type": "image/png", "Content-Length": str(len(PNG))},
        now=datetime.now(UTC) - timedelta(minutes=5),
    )
    response = await put(media, url, PNG)
    assert response.status_code in (400, 403)
    assert b"AccessDenied" in response.content or b"Expired" in response.content


async def test_anonymous_access_refused(media: World) -> None:
    alice, _bob, room = await pair(media)
    body = (await ask_upload(alice, room)).json()
    await put(media, body["upload"]["url"], PNG)
    key = urlsplit(body["upload"]["url"]).path
    store = f"http://{media.server.settings.config.storage.address}"
    async with httpx.AsyncClient() as anon:
        for url in (f"{store}/{media.bucket}", f"{store}{key}", f"{store}/"):
            response = await anon.get(url)
            assert response.status_code >= 400, url
            assert PNG not in response.content
        put_anon = await anon.put(f"{store}/{media.bucket}/anon", content=b"x")
        assert put_anon.status_code >= 400
    # Through the web origin, unsigned requests never reach the store.
    for path in (f"/{media.bucket}/", key):
        response = await media.server.http.get(path)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    delete = await media.server.http.delete(key + "?X-Amz-Signature=x")
    assert delete.status_code == 405


async def test_membership_rules(media: World) -> None:
    alice, _bob, room = await pair(media)
    mallory = await person(media.server, "mallory")
    denied = await ask_upload(mallory, room)
    assert denied.status_code == 404
    body = (await ask_upload(alice, room)).json()
    await put(media, body["upload"]["url"], PNG)
    stolen = await mallory.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert stolen["error"]["code"] == "forbidden"
    ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert ack["ok"]
    download = await mallory.get(f"/api/media/{body['media_id']}")
    assert download.status_code == 404
    unknown = await alice.get("/api/media/nope")
    assert unknown.status_code == 404
    unauth = await media.server.http.get(f"/api/media/{body['media_id']}")
    assert unauth.status_code == 401


async def test_request_validation(media: World) -> None:
    alice, _bob, room = await pair(media)
    not_allowed = await ask_upload(alice, room, ctype="text/html", name="x.html")
    assert not_allowed.status_code == 415
    assert not_allowed.json()["error"]["code"] == "media_type_not_allowed"
    too_big = await ask_upload(alice, room, size=101 * 1024 * 1024)
    assert too_big.status_code == 413
    for bad in (
        {"room_id": room, "filename": "a", "content_type": "image/png"},
        {"room_id": room, "filename": "a", "content_type": "image/png", "size": -1},
        {"room_id": "1", "filename": "a", "content_type": "image/png", "size": 1},
        {"room_id": room, "filename": "a", "content_type": "image/png", "size": 1, "key": "x"},
    ):
        response = await alice.post("/api/media/uploads", bad)
        assert response.status_code == 400, bad
    empty_name = await ask_upload(alice, room, name="../../")
    assert empty_name.status_code == 400
    # A path in the name is dropped: the key is the server's, the name is for display.
    odd = (await ask_upload(alice, room, name="../../etc/passwd.png")).json()
    assert "etc" not in odd["upload"]["url"]
    for payload in ({}, {"media_id": 5}, {"media_id": "x" * 65}, {"media_id": "a", "x": 1}):
        ack = await alice.sock.call("media:uploaded", payload)
        assert ack["error"]["code"] == "invalid_request", payload


async def test_mismatched_object_refused_and_deleted(media: World) -> None:
    alice, _bob, room = await pair(media)
    body = (await ask_upload(alice, room)).json()
    key = urlsplit(body["upload"]["url"]).path.removeprefix(f"/{media.bucket}/")
    # Someone with store credentials writes other bytes at that key (the URL would refuse them).
    import io

    await asyncio.to_thread(
        media.minio.put_object, media.bucket, key, io.BytesIO(b"short"), 5, "image/png"
    )
    ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert ack["error"]["code"] == "upload_mismatch"
    await assert_gone(media, key)
    again = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert again["error"]["code"] == "not_found"


async def test_repeated_notify_is_idempotent(media: World) -> None:
    alice, bob, room = await pair(media)
    body = (await ask_upload(alice, room)).json()
    await put(media, body["upload"]["url"], PNG)
    first = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    second = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert first["ok"] and second["message"] == first["message"]
    assert first["message"]["text"] == ""
    await bob.sock.next("chat:message")
    assert (await bob.sock.call("presence:list"))["ok"]
    assert [n for n, _ in bob.sock.drain() if n == "chat:message"] == []
    history = (await bob.get(f"/api/rooms/{room}/messages")).json()["messages"]
    assert len(history) == 1


async def test_active_types_download_as_attachment(tmp_path: Path) -> None:
    async with world(tmp_path, allowed_types=["text/html", "image/png"]) as w:
        alice, _bob, room = await pair(w)
        page = b"<script>alert(1)</script>"
        body = await ask_upload(alice, room, size=len(page), ctype="text/html", name="x.html")
        upload = body.json()
        assert (await put(w, upload["upload"]["url"], page, "text/html")).status_code == 200
        assert (await alice.sock.call("media:uploaded", {"media_id": upload["media_id"]}))["ok"]
        location = (await alice.get(f"/api/media/{upload['media_id']}")).headers["Location"]
        served = await w.server.http.get(location)
        assert served.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in served.headers["content-security-policy"]


async def test_abandoned_uploads_are_cleaned(tmp_path: Path) -> None:
    async with world(tmp_path, pending_ttl=1, cleanup_interval=0.2) as w:
        alice, _bob, room = await pair(w)
        body = (await ask_upload(alice, room)).json()
        await put(w, body["upload"]["url"], PNG)
        key = urlsplit(body["upload"]["url"]).path.removeprefix(f"/{w.bucket}/")
        db = w.server.app.container.db.conn
        async with asyncio.timeout(10):
            while True:
                async with db.execute("SELECT 1 FROM media WHERE id = ?", (body["media_id"],)) as c:
                    if await c.fetchone() is None:
                        break
                await asyncio.sleep(0.05)
        await assert_gone(w, key)
        late = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
        assert late["error"]["code"] == "not_found"


async def test_store_down(media: World) -> None:
    alice, bob, room = await pair(media)
    body = (await ask_upload(alice, room)).json()
    await put(media, body["upload"]["url"], PNG)
    media.store.terminate()
    media.store.wait(timeout=10)
    down = await ask_upload(alice, room)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "storage_unavailable"
    notify = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
    assert notify["error"]["code"] == "storage_unavailable"
    proxied = await put(media, body["upload"]["url"], PNG)
    assert proxied.status_code == 503
    health = await media.server.http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["services"]["store"]["state"] == "down"
    # Chat and calls keep working.
    assert (await alice.send(room, "still here", "s1"))["ok"]
    assert (await bob.sock.next("chat:message"))["text"] == "still here"
    call = await alice.sock.call("call:start", {"callee_id": bob.id})
    assert call["ok"]


async def test_external_endpoint_same_code_path(tmp_path: Path) -> None:
    """`managed = "none"`: an S3 endpoint the appliance does not run (here an rclone started
    beside it); URLs point at the endpoint itself, the web origin proxies nothing."""
    store_settings = make_settings(tmp_path / "store", {"storage": storage_overrides()})
    storage = store_settings.config.storage
    external = {
        "managed": "none",
        "endpoint": f"http://{storage.address}",
        "access_key": storage.access_key,
        "secret_key": storage.secret_key.get_secret_value(),
    }
    async with (
        running_store(store_settings),
        running_server(tmp_path / "d", {"storage": external}) as server,
    ):
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        body = (await ask_upload(alice, room)).json()
        url = body["upload"]["url"]
        assert url.startswith(f"http://{storage.address}/")  # straight to the endpoint
        async with httpx.AsyncClient() as browser:
            stored = await browser.put(url, content=PNG, headers={"Content-Type": "image/png"})
            assert stored.status_code == 200
            ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"]})
            assert ack["ok"], ack
            location = (await bob.get(f"/api/media/{body['media_id']}")).headers["Location"]
            assert location.startswith(f"http://{storage.address}/")
            assert (await browser.get(location)).content == PNG
        # The web origin does not pass anything to an external store.
        assert (await server.http.get(urlsplit(url).path + "?X-Amz-Signature=x")).status_code == 404
