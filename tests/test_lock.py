"""The lock files pin every dependency that pyproject.toml declares, at a version it allows."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def pins(lock: Path) -> dict[str, list[tuple[str, str]]]:
    """name -> [(version, marker)] for each `name==version ; marker` line of a lock file."""
    found: dict[str, list[tuple[str, str]]] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            found.setdefault(canonicalize_name(name), []).append((version, marker or ""))
    return found


def declared(extra: str | None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extra:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


@pytest.mark.parametrize(
    ("lock", "extra"), [("requirements.lock", None), ("requirements-dev.lock", "dev")]
)
def test_lock_pins_every_declared_dependency(lock: str, extra: str | None) -> None:
    text = (ROOT / lock).read_text(encoding="utf-8")
    pinned = pins(ROOT / lock)
    assert "--hash=sha256:" in text, "the lock must carry hashes (pip --require-hashes)"
    for req in declared(extra):
        if req.marker and not req.marker.evaluate({"sys_platform": "linux"}):
            continue
        versions = pinned.get(canonicalize_name(req.name))
        assert versions, f"{req.name} is declared in pyproject.toml but not pinned in {lock}"
        for version, _marker in versions:
            assert req.specifier.contains(version, prereleases=True), (
                f"{lock} pins {req.name}=={version}, which pyproject.toml's {req} does not allow"
            )


def test_runtime_lock_is_a_subset_of_the_dev_lock() -> None:
    runtime, dev = pins(ROOT / "requirements.lock"), pins(ROOT / "requirements-dev.lock")
    for name, versions in runtime.items():
        assert dev.get(name) == versions, (
            f"{name}: {versions} in the runtime lock, {dev.get(name)} in dev"
        )
