"""Every service of the appliance, declared once. Both supervisors are rendered from this list.

Scheduled jobs (`JOBS`) are rendered as a systemd timer and its oneshot service; supervisord has
no timers, so under `appliance up` they are run by hand or from cron (docs/backup.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    description: str
    command: tuple[str, ...]  # the `appliance` sub-command that runs it in the foreground
    start_after: tuple[str, ...] = ()
    stop_wait_seconds: int = 10
    environment: tuple[tuple[str, str], ...] = ()
    #: Installed, it binds ports below 1024 (web: 80 and 443): the one capability it keeps.
    binds_privileged_ports: bool = False
    #: It reads the box's addresses from the kernel (`ip addr`, a netlink socket).
    reads_addresses: bool = False
    #: It rewrites the config (the set-up wizard) and asks its supervisor to restart services.
    rewrites_config: bool = False
    #: Under supervisord (`appliance up`): "all" output goes to the console; "errors": only lines
    #: that look like errors do, the rest goes to `<run-dir>/<name>.log` (rotated).
    console: Literal["all", "errors"] = "all"
    #: Units the installed service must not run beside (they would take its ports).
    conflicts: tuple[str, ...] = ()


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="web",
        description="HTTP API, Socket.IO and the web UI",
        command=("web",),
        # glibc hands large buffers back to the kernel at once by default, so a proxied file
        # transfer pays a page fault every few KiB; these thresholds halve its CPU cost
        # (docs/benchmarks.md, "Media transfer").
        # PYTHONMALLOC=malloc: objects come from glibc, not pymalloc's arenas, so the memory
        # of sockets that left can be handed back (transport/realtime/heap.py; under 2 % more
        # CPU per delivery, docs/benchmarks.md "Memory per socket").
        environment=(
            ("MALLOC_MMAP_THRESHOLD_", "4194304"),
            ("MALLOC_TRIM_THRESHOLD_", "67108864"),
            ("PYTHONMALLOC", "malloc"),
        ),
        binds_privileged_ports=True,
        reads_addresses=True,
        rewrites_config=True,
    ),
    ServiceSpec(
        name="store",
        description="S3 object store for shared files (rclone serve s3)",
        command=("store",),
    ),
    ServiceSpec(
        name="turn",
        description="STUN and TURN relay (coturn) with ephemeral credentials",
        command=("turn",),
        reads_addresses=True,
        console="errors",
        conflicts=("coturn.service",),
    ),
    ServiceSpec(
        name="recorder",
        description="call recorder (aiortc peer, a Socket.IO client of web)",
        command=("recorder",),
        start_after=("web",),
        # aioice lists the box's interfaces for ICE host candidates (unless
        # recording.host_addresses names them).
        reads_addresses=True,
    ),
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A command run on a schedule (not a long-running service)."""

    name: str
    description: str
    command: tuple[str, ...]  # the `appliance` sub-command, run to completion
    #: systemd calendar event (`OnCalendar=`), and a random delay so boxes do not run in step.
    on_calendar: str
    randomized_delay: str = "0"
    #: Run at the next start when the box was off at the scheduled time.
    persistent: bool = True
    #: Start after these services (when they start together at boot).
    start_after: tuple[str, ...] = ()
    #: Seconds the run may take before systemd stops it.
    timeout_seconds: int = 6 * 3600


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        name="backup",
        description="nightly backup (appliance backup --scheduled, docs/backup.md)",
        command=("backup", "--scheduled"),
        on_calendar="*-*-* 03:30:00",
        randomized_delay="30min",
        start_after=("store", "web"),
    ),
)


def by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)
