"""scripts/install.sh in a throwaway Debian 12 root: install, a second run that changes nothing,
the config handed back by appliance-reload, --upgrade, --uninstall and --purge. Also: shellcheck
on the scripts, and the apt packages the installer needs exist for arm64.

The Debian root is built with mmdebstrap (no cache: CI is a clean machine), the checkout copied
into it, and the installer run through chroot with a policy-rc.d that stops services from
starting; systemd does not run there, which the installer notices (it enables, does not start).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from appliance.supervision.render import systemd_units

ROOT = Path(__file__).resolve().parent.parent
INSTALL_SH = ROOT / "scripts" / "install.sh"
MIRROR = "http://deb.debian.org/debian"
CHECKOUT = "/srv/appliance"  # where the checkout sits inside the Debian root
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
# A Debian 12 server has these already; the installer installs the rest (coturn, avahi, venv).
PREINSTALLED = ["systemd", "passwd", "iproute2", "ca-certificates", "python3"]
NOT_COPIED = {".venv", ".git", "node_modules", "__pycache__", ".mypy_cache", ".pytest_cache"}
NOT_COPIED_AT_TOP = {"data", "test-artifacts", ".hypothesis", ".ruff_cache"}


def apt_packages() -> list[str]:
    """The APT_PACKAGES array of scripts/install.sh."""
    match = re.search(r"^APT_PACKAGES=\(([^)]*)\)", INSTALL_SH.read_text(), re.MULTILINE)
    assert match
    return match.group(1).split()


# -- fast checks ---------------------------------------------------------------------------------


def test_scripts_pass_shellcheck() -> None:
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    scripts += [ROOT / "scripts" / name for name in ("run", "setup", "test")]
    assert INSTALL_SH in scripts
    result = subprocess.run(
        ["shellcheck", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_help_and_bad_option() -> None:
    shown = subprocess.run(
        ["bash", str(INSTALL_SH), "--help"], capture_output=True, text=True, timeout=30
    )
    assert shown.returncode == 0
    for option in ("--upgrade", "--uninstall", "--purge"):
        assert option in shown.stdout
    bad = subprocess.run(
        ["bash", str(INSTALL_SH), "--frobnicate"], capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 1
    assert "unknown option: --frobnicate" in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_apt_packages_exist_for_arm64(tmp_path: Path) -> None:
    """Resolve the installer's packages for arm64 in a throwaway apt state (the host's own
    architectures and package lists stay untouched): every package and its dependencies."""
    etc = tmp_path / "etc"
    for folder in ("sources.list.d", "preferences.d", "apt.conf.d"):
        (etc / folder).mkdir(parents=True)
    for folder in ("lists/partial", "cache/archives/partial"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "status").touch()
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (etc / "sources.list").write_text(
        f"deb [arch=arm64 signed-by={keyring}] {MIRROR} bookworm main\n"
        f"deb [arch=arm64 signed-by={keyring}] {MIRROR} bookworm-updates main\n"
    )
    options = [
        f"-oDir::Etc={etc}",
        f"-oDir::State::Lists={tmp_path / 'lists'}",
        f"-oDir::State::status={tmp_path / 'status'}",
        f"-oDir::Cache={tmp_path / 'cache'}",
        "-oAPT::Architecture=arm64",
        "-oAPT::Architectures=arm64",
        "-oDebug::NoLocking=1",
    ]
    update = subprocess.run(
        ["apt-get", *options, "-q", "update"], capture_output=True, text=True, timeout=240
    )
    assert update.returncode == 0, update.stderr
    packages = apt_packages()
    simulated = subprocess.run(
        ["apt-get", *options, "-q", "install", "--simulate", "--no-install-recommends", *packages],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert simulated.returncode == 0, simulated.stdout + simulated.stderr
    for package in packages:
        line = rf"^Inst {re.escape(package)} \(.*\[(arm64|all)\]\)"
        assert re.search(line, simulated.stdout, re.M), f"{package} not installable on arm64"


# -- the Debian root ------------------------------------------------------------------------------


class DebianRoot:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __truediv__(self, inner: str) -> Path:
        return self.path / inner.lstrip("/")

    def run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["chroot", str(self.path), *command],
            env=CHROOT_ENV,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def install(self, *options: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self.run("bash", f"{CHECKOUT}/scripts/install.sh", *options, timeout=1200)
        print(f"install.sh {' '.join(options)}: {time.monotonic() - started:.0f} s")
        return result

    def owner_mode(self, inner: str) -> str:
        """`user:group mode` as the Debian root names them, e.g. `root:appliance 640`."""
        result = self.run("stat", "-c", "%U:%G %a", inner)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def manifest(self) -> dict[str, tuple[object, ...]]:
        """Every path the installer may touch: type, mode, owner, mtime, content hash."""
        found: dict[str, tuple[object, ...]] = {}
        for top in ("etc", "opt", "var/lib/appliance", "usr/local", "srv"):
            for folder, dirs, files in os.walk(self / top):
                for name in [*dirs, *files]:
                    path = Path(folder, name)
                    info = path.lstat()
                    entry: tuple[object, ...] = (info.st_mode, info.st_uid, info.st_gid)
                    if path.is_symlink():
                        entry += (os.readlink(path),)
                    elif path.is_file():
                        entry += (info.st_mtime_ns, info.st_size)
                        if "/venv/" not in str(path):
                            entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
                    found[str(path.relative_to(self.path))] = entry
        return found


def _not_copied(folder: str, names: list[str]) -> set[str]:
    skip = {name for name in names if name in NOT_COPIED or name.endswith(".egg-info")}
    if Path(folder) == ROOT:
        skip |= {name for name in names if name in NOT_COPIED_AT_TOP}
    if Path(folder) == ROOT / "webui":
        skip.add("dist")
    return skip


@contextmanager
def debian_root(base: Path) -> Iterator[DebianRoot]:
    root = DebianRoot(base / "root")
    started = time.monotonic()
    subprocess.run(
        [
            "mmdebstrap",
            "--quiet",
            "--variant=apt",
            f"--include={','.join(PREINSTALLED)}",
            "bookworm",
            str(root.path),
            MIRROR,
        ],
        check=True,
        timeout=900,
    )
    print(f"mmdebstrap: {time.monotonic() - started:.0f} s")
    mounted = False
    try:
        shutil.copytree(ROOT, root / CHECKOUT, ignore=_not_copied, symlinks=True)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# no service starts in this root\nexit 101\n")
        policy.chmod(0o755)
        (root / "etc/resolv.conf").unlink(missing_ok=True)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # The box trusts what this machine trusts (e.g. a proxy's CA; none on a clean machine).
        for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
        subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
        mounted = True
        assert root.run("update-ca-certificates").returncode == 0
        yield root
    finally:
        if mounted:
            result = subprocess.run(["umount", str(root / "proc")], check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "--lazy", str(root / "proc")], check=True)
        with suppress(FileNotFoundError):
            shutil.rmtree(root.path)


def unit_command(unit_text: str) -> str:
    """The shell command of an `ExecStart=/bin/sh -c '...'` line, as systemd would run it."""
    line = next(x for x in unit_text.splitlines() if x.startswith("ExecStart="))
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert argv[:2] == ["/bin/sh", "-c"]
    return argv[2].replace("$$", "$").replace("%%", "%")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_installer_in_a_fresh_debian_root(tmp_path: Path) -> None:
    started = time.monotonic()
    with debian_root(tmp_path) as box:
        # -- install ------------------------------------------------------------------------
        first = box.install()
        assert first.returncode == 0, first.stdout + first.stderr
        assert "systemd is not running here" in first.stderr
        assert "installed coturn" in first.stderr  # the apt step ran
        token = (box / "var/lib/appliance/setup-token").read_text().strip()
        assert len(token) >= 20
        assert f"  {token}" in first.stdout
        assert re.search(r"https://[^/\s]+\.local/", first.stdout)

        user = box.run("getent", "passwd", "appliance").stdout.strip().split(":")
        assert user[5:] == ["/var/lib/appliance", "/usr/sbin/nologin"], user
        assert int(user[2]) < 1000  # a system user
        assert box.owner_mode("/etc/appliance") == "root:appliance 770"
        assert box.owner_mode("/etc/appliance/appliance.toml") == "root:appliance 640"
        assert box.owner_mode("/var/lib/appliance") == "appliance:appliance 750"
        assert box.owner_mode("/var/lib/appliance/setup-token") == "appliance:appliance 600"
        assert box.owner_mode("/var/lib/appliance/appliance.db") == "appliance:appliance 600"
        assert box.owner_mode("/opt/appliance") == "root:root 755"
        config = (box / "etc/appliance/appliance.toml").read_text()
        assert re.search(r"^port = 80$", config, re.M)
        assert re.search(r"^https_port = 443$", config, re.M)
        assert re.search(r'^jwt_secret = "[^"]{32,}"', config, re.M)
        assert f'token = "{token}"' in config

        helped = box.run("/opt/appliance/venv/bin/appliance", "--help")
        assert helped.returncode == 0 and "usage: appliance" in helped.stdout
        assert (box / "opt/appliance/webui/index.html").is_file()
        src = box / "opt/appliance/src"
        assert (src / "appliance/cli.py").is_file()
        for absent in (".venv", ".git", "data", "webui/node_modules", "webui/dist"):
            assert not (src / absent).exists(), absent

        units = systemd_units()
        unit_dir = box / "etc/systemd/system"
        for name, text in units.items():
            assert (unit_dir / name).read_text() == text, name
        wants = {
            "multi-user.target.wants": ["appliance.target"],
            "appliance.target.wants": [
                "appliance-web.service",
                "appliance-store.service",
                "appliance-turn.service",
                "appliance-recorder.service",
                "appliance-reload.path",
                "appliance-backup.timer",
            ],
        }
        for folder, names in wants.items():
            for name in names:
                link = unit_dir / folder / name
                assert link.is_symlink(), link
                assert os.readlink(link) == f"/etc/systemd/system/{name}"
        assert not (unit_dir / "multi-user.target.wants/coturn.service").exists()
        assert box.run("systemctl", "is-enabled", "coturn.service").stdout.strip() == "disabled"
        verified = subprocess.run(
            ["systemd-analyze", "verify", f"--root={box.path}", *units],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verified.returncode == 0, verified.stderr
        assert verified.stderr == "", verified.stderr  # with the real binaries this time

        avahi = (box / "etc/avahi/services/appliance.service").read_text()
        assert "<type>_https._tcp</type>" in avahi and "<port>443</port>" in avahi
        assert box.owner_mode("/etc/avahi/services/appliance.service") == "root:root 644"

        # -- a second run changes nothing and says so ----------------------------------------
        before = box.manifest()
        second = box.install()
        assert second.returncode == 0, second.stdout + second.stderr
        assert "nothing changed" in second.stderr
        assert f"  {token}" in second.stdout
        assert box.manifest() == before

        # -- the wizard rewrites the config; appliance-reload hands it back to root --------------
        rewrite = (
            "from pathlib import Path\n"
            "from appliance.config_writer import update_config\n"
            "update_config(Path('/etc/appliance/appliance.toml'), "
            "{'organisation': {'name': 'Installer test'}})\n"
        )
        written = box.run(
            "runuser", "-u", "appliance", "--", "/opt/appliance/venv/bin/python", "-c", rewrite
        )
        assert written.returncode == 0, written.stderr
        assert box.owner_mode("/etc/appliance/appliance.toml") == "appliance:appliance 640"
        reload = unit_command((unit_dir / "appliance-reload.service").read_text())
        (box / "run/appliance-reload").mkdir(parents=True)  # its RuntimeDirectory=
        # No systemd to ask here: a stand-in systemctl notes what it was asked.
        stub = box / "srv/stub/systemctl"
        stub.parent.mkdir()
        stub.write_text('#!/bin/sh\necho "$@" >> /srv/stub/calls\n')
        stub.chmod(0o755)
        for _ in range(2):  # the second time the content is the same: nothing to do
            result = box.run("env", "PATH=/srv/stub:/usr/bin:/bin", "/bin/sh", "-c", reload)
            assert result.returncode == 0, result.stderr
            assert box.owner_mode("/etc/appliance/appliance.toml") == "root:appliance 640"
        calls = (box / "srv/stub/calls").read_text().splitlines()
        restart = (
            "try-restart appliance-web.service appliance-store.service appliance-turn.service"
            " appliance-recorder.service"
        )
        assert calls == [restart]
        config_bytes = (box / "etc/appliance/appliance.toml").read_bytes()

        # -- a newer checkout: refused without --upgrade, then upgraded ----------------------
        marker = box / CHECKOUT / "appliance/__init__.py"
        marker.write_text(marker.read_text() + "# a newer checkout\n")
        before = box.manifest()
        refused = box.install()
        assert refused.returncode == 1
        assert "run with --upgrade" in refused.stderr
        assert box.manifest() == before
        upgraded = box.install("--upgrade")
        assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
        assert "migrated the database" in upgraded.stderr
        assert "building the web UI" not in upgraded.stderr  # its sources did not change
        assert "# a newer checkout" in (src / "appliance/__init__.py").read_text()
        assert (box / "etc/appliance/appliance.toml").read_bytes() == config_bytes
        assert (box / "var/lib/appliance/setup-token").read_text().strip() == token
        assert box.owner_mode("/etc/appliance/appliance.toml") == "root:appliance 640"
        again = box.install("--upgrade")
        assert "nothing changed" in again.stderr

        # -- uninstall keeps config and data; purge removes them -----------------------------
        removed = box.install("--uninstall")
        assert removed.returncode == 0, removed.stderr
        assert not (box / "opt/appliance").exists()
        for name in units:
            assert not (unit_dir / name).exists(), name
        assert not (unit_dir / "multi-user.target.wants/appliance.target").exists()
        assert not list((unit_dir / "appliance.target.wants").glob("*"))
        assert not (box / "etc/avahi/services/appliance.service").exists()
        assert (box / "etc/appliance/appliance.toml").read_bytes() == config_bytes
        assert (box / "var/lib/appliance/appliance.db").is_file()
        assert box.run("getent", "passwd", "appliance").returncode == 0

        purged = box.install("--uninstall", "--purge")
        assert purged.returncode == 0, purged.stderr
        assert not (box / "etc/appliance").exists()
        assert not (box / "var/lib/appliance").exists()
        assert box.run("getent", "passwd", "appliance").returncode == 2
        nothing = box.install("--uninstall", "--purge")
        assert "nothing changed" in nothing.stderr
    print(f"installer test: {time.monotonic() - started:.0f} s in all")
