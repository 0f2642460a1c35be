"""Backup and restore against a real web server, a real store (`rclone serve s3`) and real SQLite
files: a backup taken while messages keep arriving holds every message acked before its snapshot
point; the restored box serves the messages, files, recordings and logins; encrypted archives,
wrong passphrases, truncated and tampered archives, non-empty targets, the scheduled mode."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sqlite3
import sys
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from appliance.adapters.service_key import ensure_service_key
from appliance.backup.crypto import MAGIC
from appliance.backup.errors import BackupError
from appliance.backup.manifest import DATABASE_NAME, MANIFEST_NAME
from appliance.backup.restore import restore_archive
from appliance.config import load
from appliance.storage.calls import CallRepository
from appliance.storage.recordings import Finished, NewRecording, RecordingRepository
from tests.store_support import running_store, storage_overrides
from tests.support import RunningServer, make_settings, running_server
from tests.test_chat import Person, person

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200_000)
WEBM = b"\x1aE\xdf\xa3" + os.urandom(300_000)
PASSPHRASE = "a long backup passphrase 42"
FAST_CHAT = {"chat_rate": 100_000.0, "chat_burst": 100_000}


async def appliance(*args: str, stdin: str = "", timeout: float = 120) -> tuple[int, str, str]:
    """The `appliance` command in a subprocess, without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "appliance",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Box:
    server: RunningServer
    minio: Minio
    bucket: str

    async def put(self, key: str, data: bytes, ctype: str) -> None:
        await asyncio.to_thread(
            self.minio.put_object, self.bucket, key, io.BytesIO(data), len(data), content_type=ctype
        )


def minio_for(server: RunningServer) -> Minio:
    config = server.settings.config.storage
    return Minio(
        config.address,
        config.access_key,
        config.secret_key.get_secret_value(),
        secure=False,
        region=config.region,
    )


@asynccontextmanager
async def box(data_dir: Path, overrides: dict[str, dict[str, Any]]) -> AsyncIterator[Box]:
    settings = make_settings(data_dir, overrides)
    async with running_store(settings), running_server(data_dir, overrides) as server:
        yield Box(server, minio_for(server), settings.config.storage.bucket)


async def share_file(alice: Person, room: int, server: RunningServer) -> str:
    """Alice uploads PNG into the room (pre-signed PUT, then media:uploaded); the media id."""
    asked = await alice.post(
        "/api/media/uploads",
        {"room_id": room, "filename": "photo.png", "content_type": "image/png", "size": len(PNG)},
    )
    assert asked.status_code == 201, asked.text
    body = asked.json()
    put = await server.http.put(
        body["upload"]["url"], content=PNG, headers={"Content-Type": "image/png"}
    )
    assert put.status_code == 200, put.text
    ack = await alice.sock.call("media:uploaded", {"media_id": body["media_id"], "caption": "pic"})
    assert ack["ok"], ack
    return str(body["media_id"])


async def make_recording(b: Box, alice: Person, bob: Person) -> str:
    """A finished call recording: the call and recording rows, and its file in the store."""
    db = b.server.app.container.db
    call_id = str(uuid.uuid4())
    recording_id = str(uuid.uuid4())
    now = time.time()
    await CallRepository(db).started(call_id, alice.id, bob.id, True, True, now - 60)
    await CallRepository(db).ended(call_id, "hangup", now)
    key = f"recordings/{recording_id}.webm"
    await RecordingRepository(db).add(NewRecording(recording_id, call_id, alice.id, key, now - 50))
    await b.put(key, WEBM, "video/webm")
    done = Finished("video/webm", len(WEBM), 50.0, now - 50, now)
    assert await RecordingRepository(db).mark_ready(recording_id, done)
    return recording_id


async def download(someone: Person, path: str) -> bytes:
    """GET an API path that redirects to a pre-signed store URL; the file's bytes."""
    response = await someone.get(path)
    assert response.status_code == 302, response.text
    file = await someone.server.http.get(response.headers["Location"])
    assert file.status_code == 200, file.text
    return bytes(file.content)


def member_bytes(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:") as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def archive_manifest(archive: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(member_bytes(archive, MANIFEST_NAME))
    return data


def archive_messages(archive: Path, tmp: Path) -> dict[str, int]:
    """client_msg_id -> id of every message in the archive's database."""
    db = tmp / "archived.db"
    db.write_bytes(member_bytes(archive, DATABASE_NAME))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = conn.execute("SELECT client_msg_id, id FROM messages WHERE client_msg_id LIKE 'm%'")
        return {str(cid): int(mid) for cid, mid in rows}


async def history(someone: Person, room: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    before: Any = None
    while True:
        query = "?limit=100" + (f"&before={before}" if before is not None else "")
        page = (await someone.get(f"/api/rooms/{room}/messages{query}")).json()
        found += page["messages"]
        before = page["next_before"]
        if before is None or not page["messages"]:
            return found


class Sender:
    """Alice sends messages, a few in flight at once, until stopped; each ack's wall-clock time
    is recorded the moment it arrives."""

    def __init__(self, alice: Person, room: int) -> None:
        self.alice = alice
        self.room = room
        self.acked: dict[str, tuple[int, float]] = {}
        self.stop = asyncio.Event()
        self.progress = asyncio.Event()

    async def _one(self, lane: int) -> None:
        n = 0
        while not self.stop.is_set():
            cid = f"m{lane:02d}-{n:06d}"
            n += 1
            ack = await self.alice.send(self.room, f"message {cid}", cid)
            acked_at = time.time()
            assert ack["ok"], ack
            self.acked[cid] = (int(ack["message"]["id"]), acked_at)
            if len(self.acked) >= 100:
                self.progress.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._one(lane) for lane in range(8)))


@pytest.mark.timeout(240)
async def test_backup_while_chatting_then_restore_on_a_new_box(tmp_path: Path) -> None:
    overrides = {"storage": storage_overrides(), "rate_limits": FAST_CHAT}
    original = tmp_path / "box"
    archive = tmp_path / "box.tar"
    async with box(original, overrides) as b:
        server = b.server
        alice = await person(server, "alice")
        bob = await person(server, "bob")
        room = await alice.direct(bob)
        media_id = await share_file(alice, room, server)
        recording_id = await make_recording(b, alice, bob)
        old_token = alice.token
        service_key = ensure_service_key(original)
        for leftover in ("run/supervisord.conf", "recorder/call/a.webm", "backups/old.tar"):
            (original / leftover).parent.mkdir(parents=True, exist_ok=True)
            (original / leftover).write_text("not in a backup")
        sender = Sender(alice, room)
        sending = asyncio.create_task(sender.run())
        await sender.progress.wait()
        started = time.monotonic()
        code, out, err = await appliance("--data-dir", str(original), "backup", str(archive))
        backup_seconds = time.monotonic() - started
        sender.stop.set()
        await sending
        assert code == 0, out + err
        assert f"backup written: {archive}" in out
        assert archive.stat().st_mode & 0o777 == 0o600
    manifest = archive_manifest(archive)
    snapshot_at = manifest["snapshot_at"]
    in_archive = archive_messages(archive, tmp_path)
    before = {cid: mid for cid, (mid, at) in sender.acked.items() if at < snapshot_at}
    after = [cid for cid, (_, at) in sender.acked.items() if at > snapshot_at]
    # Messages kept arriving on both sides of the snapshot point...
    assert len(before) >= 100 and after, (len(before), len(after))
    # ...and every one acked before it is in the archive, with its id.
    missing = [cid for cid in before if cid not in in_archive]
    assert not missing, missing[:5]
    assert all(in_archive[cid] == mid for cid, mid in before.items())
    names = {m["name"] for m in manifest["members"]}
    assert {"database/appliance.db", "config/appliance.toml", "data/tls/ca-key.pem"} <= names
    assert f"objects/recordings/{recording_id}.webm" in names
    assert any(n.startswith("objects/rooms/") for n in names)
    assert "data/recorder.key" in names
    data_members = [n for n in names if n.startswith("data/")]
    # Not run/, recorder/, backups/ (nor the objects folder: objects come through S3).
    assert all(n == "data/recorder.key" or n.startswith("data/tls/") for n in data_members)
    assert manifest["schema_version"] >= 7
    print(
        f"\nbackup: {len(sender.acked)} messages sent, {len(in_archive)} in the archive, "
        f"{archive.stat().st_size / 1e6:.2f} MB, {backup_seconds:.2f} s (command included)"
    )

    # -- a new box: an empty data dir, the original store gone ----------------------------
    restored = tmp_path / "new-box"
    code, out, err = await appliance("--data-dir", str(restored), "restore", str(archive))
    assert code == 0, out + err
    assert "restored" in out
    assert (restored / "appliance.toml").stat().st_mode & 0o777 == 0o600
    assert (restored / "appliance.db").stat().st_mode & 0o777 == 0o600
    assert (restored / "tls/ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert (restored / "tls/ca.pem").read_bytes() == (original / "tls/ca.pem").read_bytes()
    assert (restored / "recorder.key").read_text().strip() == service_key
    assert (restored / "recorder.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in restored.iterdir()) == [
        "appliance.db",
        "appliance.toml",
        "objects",
        "recorder.key",
        "tls",
    ]
    assert (restored / "appliance.toml").read_bytes() == (original / "appliance.toml").read_bytes()
    settings = load(restored)
    async with running_store(settings), running_server(restored) as server:
        # Logins work: a password login, and a token issued by the old box (same keys).
        again = Person(server, "alice", alice.id, await server.token("alice"))
        assert (await again.get("/api/me")).status_code == 200
        old = Person(server, "alice", alice.id, old_token)
        assert (await old.get("/api/me")).json()["username"] == "alice"
        messages = await history(again, room)
        served = {m["client_msg_id"]: m["id"] for m in messages if m.get("client_msg_id")}
        for cid, mid in in_archive.items():
            assert served[cid] == mid
        assert await download(again, f"/api/media/{media_id}") == PNG
        listed = (await again.get("/api/recordings")).json()["recordings"]
        assert [r["id"] for r in listed] == [recording_id]
        assert await download(again, f"/api/recordings/{recording_id}") == WEBM
        bob_again = Person(server, "bob", bob.id, await server.token("bob"))
        assert await download(bob_again, f"/api/media/{media_id}") == PNG
        # The restored box takes new messages.
        await again.tab()
        ack = await again.send(room, "after the restore", "after-1")
        assert ack["ok"], ack


# -- a small box for the refusal tests ---------------------------------------------------------


async def small_backup(tmp_path: Path, *extra: str, stdin: str = "") -> tuple[Path, Path]:
    """A box with one user and one object, backed up by the command; (data dir, archive)."""
    data = tmp_path / "small"
    archive = tmp_path / ("small.tar.age" if "--encrypt" in extra else "small.tar")
    async with box(data, {"storage": storage_overrides()}) as b:
        await b.server.add_user("carol", admin=True)
        await b.put("rooms/1/note.txt", b"hello from the store\n" * 1000, "text/plain")
        code, out, err = await appliance(
            "--data-dir", str(data), "backup", str(archive), *extra, stdin=stdin
        )
        assert code == 0, out + err
    return data, archive


def refused(archive: Path, target: Path, expected: str, **kwargs: Any) -> None:
    with pytest.raises(BackupError) as info:
        restore_archive(archive, target, **kwargs)
    assert expected in info.value.message, info.value.message
    assert not target.exists(), list(target.iterdir())  # nothing written


def member_span(archive: Path, name: str) -> tuple[int, int]:
    with tarfile.open(archive, "r:") as tar:
        info = tar.getmember(name)
        return info.offset_data, info.size


def flipped(archive: Path, dest: Path, offset: int) -> Path:
    data = bytearray(archive.read_bytes())
    data[offset] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


@pytest.mark.timeout(120)
async def test_truncated_or_tampered_archive_is_refused_with_nothing_written(
    tmp_path: Path,
) -> None:
    _, archive = await small_backup(tmp_path)
    size = archive.stat().st_size
    target = tmp_path / "target"
    for keep in (size // 2, size - 1024 * 10, size - 512, size - 10, 100):
        cut = tmp_path / f"cut-{keep}.tar"
        cut.write_bytes(archive.read_bytes()[:keep])
        refused(cut, target, "truncated" if keep > 100 else "damaged")
    db_start, db_size = member_span(archive, DATABASE_NAME)
    obj_start, obj_size = member_span(archive, "objects/rooms/1/note.txt")
    man_start, _ = member_span(archive, MANIFEST_NAME)
    with tarfile.open(archive, "r:") as tar:
        header = tar.getmember("config/appliance.toml").offset + 100  # the header's mode field
    cases = {
        db_start + db_size // 2: "database/appliance.db is damaged",
        obj_start + obj_size - 1: "objects/rooms/1/note.txt is damaged",
        man_start + 20: "manifest",
        header: "damaged",
        obj_start + obj_size: "stray bytes",  # the padding after a member
        size - 100: "stray bytes",  # the end blocks
    }
    for offset, expected in cases.items():
        refused(flipped(archive, tmp_path / "bad.tar", offset), target, expected)
    code, _out, err = await appliance(
        "--data-dir", str(target), "restore", str(tmp_path / f"cut-{size // 2}.tar")
    )
    assert code == 1
    assert err.startswith("appliance: the archive") and "truncated" in err, err
    assert not target.exists()
    not_a_backup = tmp_path / "plain.tar"
    with tarfile.open(not_a_backup, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    refused(not_a_backup, target, "no manifest")


@pytest.mark.timeout(180)
async def test_encrypted_round_trip_wrong_passphrase_and_tampering(tmp_path: Path) -> None:
    data, archive = await small_backup(tmp_path, "--encrypt", stdin=PASSPHRASE + "\n")
    raw = archive.read_bytes()
    assert raw.startswith(MAGIC)
    assert b"carol" not in raw and b"hello from the store" not in raw
    target = tmp_path / "target"
    code, out, err = await appliance(
        "--data-dir", str(target), "restore", str(archive), stdin="not the passphrase\n"
    )
    assert code == 1
    assert "wrong passphrase" in err
    assert PASSPHRASE not in out + err and "not the passphrase" not in out + err
    assert not target.exists()
    good = {"passphrase": lambda: PASSPHRASE}
    header_end = raw.index(b"\n", len(MAGIC)) + 1
    for offset in (header_end + 200, len(raw) // 2, len(raw) - 5):
        refused(flipped(archive, tmp_path / "bad.age", offset), target, "damaged", **good)
    refused(flipped(archive, tmp_path / "bad.age", len(MAGIC) + 10), target, "header", **good)
    cut = tmp_path / "cut.age"
    cut.write_bytes(raw[: len(raw) - 70_000])
    refused(cut, target, "truncated", **good)
    # The right passphrase, from a file: everything is back.
    passfile = tmp_path / "passphrase"
    passfile.write_text(PASSPHRASE + "\n")
    code, out, err = await appliance(
        "--data-dir", str(target), "restore", str(archive), "--passphrase-file", str(passfile)
    )
    assert code == 0, out + err
    assert (target / "appliance.toml").read_bytes() == (data / "appliance.toml").read_bytes()
    settings = load(target)
    async with running_store(settings), running_server(target) as server:
        assert (await server.login("carol"))["access_token"]
        minio = minio_for(server)
        got = await asyncio.to_thread(
            minio.get_object, settings.config.storage.bucket, "rooms/1/note.txt"
        )
        try:
            assert got.read() == b"hello from the store\n" * 1000
        finally:
            got.close()
            got.release_conn()


@pytest.mark.timeout(120)
async def test_non_empty_target_needs_force(tmp_path: Path) -> None:
    data, archive = await small_backup(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    (target / "something").write_text("keep me")
    code, out, err = await appliance("--data-dir", str(target), "restore", str(archive))
    assert code == 1
    assert "is not empty" in err and "--force" in err
    assert sorted(p.name for p in target.iterdir()) == ["something"]
    # --force replaces the database (a stale WAL of another database goes with it).
    other = tmp_path / "other"
    assert (await appliance("--data-dir", str(other), "init"))[0] == 0
    for name in ("appliance.db", "appliance.toml"):
        (target / name).write_bytes((other / name).read_bytes())
    (target / "appliance.db-wal").write_bytes(b"stale")
    code, out, err = await appliance("--data-dir", str(target), "restore", str(archive), "--force")
    assert code == 0, out + err
    assert not (target / "appliance.db-wal").exists()
    assert (target / "something").read_text() == "keep me"
    assert (target / "appliance.toml").read_bytes() == (data / "appliance.toml").read_bytes()
    with sqlite3.connect(target / "appliance.db") as conn:
        users = [r[0] for r in conn.execute("SELECT username FROM users")]
    assert users == ["carol"]


@pytest.mark.timeout(120)
async def test_scheduled_backups_keep_the_newest(tmp_path: Path) -> None:
    data = tmp_path / "box"
    folder = tmp_path / "backups"
    folder.mkdir()
    passfile = data / "backup-passphrase"
    overrides = {
        "storage": storage_overrides(),
        "backup": {"directory": str(folder), "keep": 3, "passphrase_file": "backup-passphrase"},
    }
    old = [f"appliance-2026010{day}T033000Z.tar" for day in range(1, 5)]
    for name in old:
        (folder / name).write_bytes(b"an older backup")
    (folder / ".appliance-20260105T033000Z.tar.partial-0123abcd").write_bytes(b"killed")
    (folder / "notes.txt").write_text("not a backup")
    async with box(data, overrides):
        passfile.write_text(PASSPHRASE + "\n")
        code, out, err = await appliance("--data-dir", str(data), "backup", "--scheduled")
        assert code == 0, out + err
    assert PASSPHRASE not in out + err
    left = sorted(p.name for p in folder.iterdir())
    new = [n for n in left if n.endswith(".tar.age")]
    assert len(new) == 1 and new[0].startswith("appliance-2026")
    assert left == sorted([*old[-2:], new[0], "notes.txt"])
    assert (folder / new[0]).stat().st_mode & 0o777 == 0o600
    result = restore_archive(folder / new[0], tmp_path / "restored", passphrase=lambda: PASSPHRASE)
    assert result.files >= 2


@pytest.mark.timeout(60)
async def test_backup_command_line_errors(tmp_path: Path) -> None:
    data = tmp_path / "box"
    make_settings(data)
    cases = [
        (("backup",), "either FILE or --scheduled"),
        (("backup", "x.tar", "--scheduled"), "either FILE or --scheduled"),
        (("backup", "x.tar", "--passphrase-file", "p"), "goes with --encrypt"),
        (("backup", "--scheduled", "--encrypt"), "backup.passphrase_file"),
    ]
    for args, expected in cases:
        code, out, err = await appliance("--data-dir", str(data), *args)
        assert code == 1, (args, out, err)
        assert expected in err, (args, err)
    code, out, err = await appliance(
        "--data-dir", str(data), "backup", str(tmp_path / "x.tar"), "--encrypt", stdin="short\n"
    )
    assert code == 1 and "too short" in err, err
    assert "short" not in err.replace("too short", "")
    assert not (tmp_path / "x.tar").exists()
    code, out, err = await appliance(
        "--data-dir", str(tmp_path / "none"), "backup", str(tmp_path / "x.tar")
    )
    assert code == 2 and "no configuration" in err, err
    code, out, err = await appliance(
        "--data-dir", str(tmp_path / "t"), "restore", str(tmp_path / "missing.tar")
    )
    assert code == 1 and "cannot read" in err, err
    assert not (tmp_path / "t").exists()


def read_terminal(master: int, into: bytearray) -> None:
    """Everything written to a pseudo-terminal until its other side is closed."""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: no process has the terminal open any more
            return
        if not chunk:
            return
        into += chunk


@pytest.mark.timeout(120)
async def test_progress_bar_with_sizes_on_a_terminal_only(tmp_path: Path) -> None:
    import pty
    import threading

    data = tmp_path / "box"
    archive = tmp_path / "box.tar"
    async with box(data, {"storage": storage_overrides()}) as b:
        await b.put("rooms/1/big.bin", os.urandom(3 * 1024 * 1024), "application/octet-stream")
        master, slave = pty.openpty()
        screen = bytearray()
        reader = threading.Thread(target=read_terminal, args=(master, screen))
        reader.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "appliance", "--data-dir", str(data), "backup", str(archive)),
                stdout=asyncio.subprocess.PIPE,
                stderr=slave,
            )
            os.close(slave)
            said, _ = await proc.communicate()
            assert proc.returncode == 0, said
            await asyncio.to_thread(reader.join, 30)
        finally:
            os.close(master)
    text = screen.decode(errors="replace")
    assert "backup: 100%" in text, text
    assert re.search(r" (3\.\d\dM)/\1 ", text), text  # sizes: 3 MiB of objects, all done
    # Not a terminal: no bar (the other tests' commands run with pipes; their stderr is empty).
    code, out, err = await appliance("--data-dir", str(tmp_path / "r"), "restore", str(archive))
    assert code == 0, out + err
    assert "%" not in err and "M/" not in err, err


@pytest.mark.timeout(60)
async def test_store_down_fails_the_backup_and_leaves_no_file(tmp_path: Path) -> None:
    from tests.test_cli import free_port

    data = tmp_path / "box"
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    make_settings(data, {"storage": {"managed": "none", "endpoint": endpoint}})
    assert (await appliance("--data-dir", str(data), "init"))[0] == 0
    code, out, err = await appliance("--data-dir", str(data), "backup", str(tmp_path / "b.tar"))
    assert code == 1, out + err
    assert f"the store at {endpoint} failed to list its objects" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box"]  # no archive, no leftovers
    for command in ("backup", "restore"):
        code, out, _ = await appliance(command, "--help")
        assert code == 0 and "usage: appliance" in out
