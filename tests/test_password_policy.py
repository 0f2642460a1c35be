"""The password policy: length, not the username, not a common password; applied by the CLI
(`user add`, `user passwd`) as by the HTTP API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from appliance.errors import AppError, ErrorCode
from appliance.services.password_policy import (
    MAX_PASSWORD_LENGTH,
    PasswordPolicy,
    common_passwords,
)
from tests.accounts_support import STRONG, assert_error
from tests.support import running_server


def refused(policy: PasswordPolicy, password: str, username: str = "") -> AppError:
    with pytest.raises(AppError) as caught:
        policy.check(password, username)
    assert password not in caught.value.message.removeprefix("password ")
    assert caught.value.message.startswith("password ")
    return caught.value


def test_the_shipped_list_is_read_once_lower_cased_and_sized() -> None:
    found = common_passwords()
    assert found is common_passwords()  # cached
    assert isinstance(found, frozenset)
    assert 9_000 <= len(found) <= 10_000
    assert {"123456", "password", "qwerty", "iloveyou", "password1"} <= found
    assert all(p == p.lower() and p.strip() == p and p for p in found)
    text = (resources.files("appliance") / "data" / "common-passwords.txt").read_text("utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("zxcvbn" in line for line in header) and any("MIT" in line for line in header)


def test_length_bounds() -> None:
    policy = PasswordPolicy(8)
    assert refused(policy, "a1b2c3d").code is ErrorCode.WEAK_PASSWORD
    policy.check("a1b2c3d4e")
    policy.check("z" * 7 + "é" * (MAX_PASSWORD_LENGTH - 7))
    assert refused(policy, "z" * (MAX_PASSWORD_LENGTH + 1)).code is ErrorCode.INVALID_REQUEST
    PasswordPolicy(12).check("twelve chars")
    assert refused(PasswordPolicy(12), "eleven char").code is ErrorCode.WEAK_PASSWORD


@pytest.mark.parametrize("password", ["sunshine", "PASSWORD1", "Qwerty123", "iloveyou", "baseball"])
def test_common_passwords_are_refused_in_any_case(password: str) -> None:
    error = refused(PasswordPolicy(8), password)
    assert error.code is ErrorCode.WEAK_PASSWORD
    assert "common" in error.message


def test_the_username_is_refused_in_any_case() -> None:
    policy = PasswordPolicy(8)
    assert refused(policy, "Margaret99", "margaret99").code is ErrorCode.WEAK_PASSWORD
    policy.check("Margaret99", "margaret")
    policy.check(STRONG, "margaret99")


def test_the_common_check_can_be_switched_off() -> None:
    PasswordPolicy(8, check_common=False).check("password1")
    PasswordPolicy(8, common=frozenset({"not-in-list"})).check("password1")
    refused(PasswordPolicy(8, common=frozenset({"my own word"})), "My Own Word")


async def test_config_keys_reach_the_api(tmp_path: Path) -> None:
    overrides = {"auth": {"password_min_length": 12, "password_check_common": False}}
    async with running_server(tmp_path / "d", overrides) as server:
        await server.add_user("root", admin=True, password=STRONG)
        token = (await server.login("root", STRONG))["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        short = await server.http.post(
            "/api/admin/users", json={"username": "a", "password": "elevenchars"}, headers=headers
        )
        error = assert_error(short, 400, "weak_password")
        assert "12" in error["message"]
        common = await server.http.post(
            "/api/admin/users",
            json={"username": "b", "password": "password1234"},
            headers=headers,
        )
        assert common.status_code == 201, common.text


# -- the CLI ----------------------------------------------------------------------------------


def appliance(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


@pytest.mark.timeout(120)
async def test_cli_user_add_passwd_and_list_apply_the_policy(tmp_path: Path) -> None:
    await asyncio.to_thread(cli_steps, str(tmp_path / "data"))
    async with running_server(tmp_path / "data") as server:
        tokens = await server.login("bob", "new sturdy phrase 7")
        assert tokens["must_change_password"] is False
        old = await server.http.post(
            "/api/auth/login", json={"username": "bob", "password": STRONG}
        )
        assert_error(old, 401, "invalid_credentials")


def cli_steps(data: str) -> None:
    common = appliance("--data-dir", data, "user", "add", "alice", "--admin", stdin="password1\n")
    assert common.returncode == 1
    assert "common" in common.stderr and "password1" not in common.stderr
    same = appliance("--data-dir", data, "user", "add", "alice12345", stdin="ALICE12345\n")
    assert same.returncode == 1 and "username" in same.stderr
    added = appliance("--data-dir", data, "user", "add", "alice", "--admin", stdin=STRONG + "\n")
    assert added.returncode == 0, added.stderr
    assert appliance("--data-dir", data, "user", "add", "bob", stdin=STRONG + "\n").returncode == 0

    listing = appliance("--data-dir", data, "user", "list")
    assert listing.returncode == 0, listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert rows == [["1", "alice", "admin"], ["2", "bob", ""]]

    weak = appliance("--data-dir", data, "user", "passwd", "bob", stdin="qwerty123\n")
    assert weak.returncode == 1 and "common" in weak.stderr
    unknown = appliance("--data-dir", data, "user", "passwd", "nobody", stdin=STRONG + "\n")
    assert unknown.returncode == 1 and "no user" in unknown.stderr
    changed = appliance("--data-dir", data, "user", "passwd", "bob", stdin="new sturdy phrase 7\n")
    assert changed.returncode == 0, changed.stderr
    assert "new sturdy phrase" not in changed.stdout + changed.stderr
