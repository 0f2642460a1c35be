"""The machine: free space in the data dir, and the file-descriptor limit of the web service."""

from __future__ import annotations

import resource
import shutil

from appliance.doctor.model import Check, DoctorContext, fail, ok, warn
from appliance.doctor.services import web_pid

MB = 1024 * 1024


async def check_disk(context: DoctorContext) -> list[Check]:
    config = context.settings.config.doctor
    data_dir = context.settings.data_dir
    usage = shutil.disk_usage(data_dir)
    free_mb = usage.free // MB
    summary = f"{free_mb} MB free of {usage.total // MB} MB in {data_dir}"
    fix = (
        "Free space on the disk of the data dir: delete old recordings (recording.retention_days),"
        " old backups and files in the store, or move the data dir to a bigger disk."
    )
    if free_mb < config.min_free_mb:
        return [fail("disk", f"{summary} (below {config.min_free_mb} MB)", fix)]
    if free_mb < config.warn_free_mb:
        return [warn("disk", f"{summary} (below {config.warn_free_mb} MB)", fix)]
    return [ok("disk", summary)]


def _limit_of(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of another process, from /proc (None: not readable)."""
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return resource.RLIM_INFINITY if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        return None
    return None


async def check_fd_limit(context: DoctorContext) -> list[Check]:
    """Each socket (a browser tab, an upload, a TURN allocation) takes a descriptor."""
    wanted = context.settings.config.doctor.min_open_files
    whose, limit = "this process", resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if context.in_web:
        whose = "the web service"
    else:
        pid = await web_pid(context)
        found = _limit_of(pid) if pid is not None else None
        if found is not None:
            whose, limit = f"the web service (pid {pid})", found
    shown = "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
    summary = f"open-file limit of {whose}: {shown}"
    if limit != resource.RLIM_INFINITY and limit < wanted:
        return [
            warn(
                "fd_limit",
                f"{summary} (below {wanted}; each connection needs one)",
                "Raise the limit: the installed units set LimitNOFILE=65536; for appliance up, "
                "run `ulimit -n 65536` first (or set it in /etc/security/limits.conf).",
            )
        ]
    return [ok("fd_limit", summary)]
