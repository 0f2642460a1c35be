"""Every service of the appliance, declared once. Both supervisors are rendered from this list."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    description: str
    command: tuple[str, ...]  # the `appliance` sub-command that runs it in the foreground
    start_after: tuple[str, ...] = ()
    stop_wait_seconds: int = 10
    environment: tuple[tuple[str, str], ...] = ()


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        name="web",
        description="HTTP API, Socket.IO and the web UI",
        command=("web",),
        # glibc hands large buffers back to the kernel at once by default, so a proxied file
        # transfer pays a page fault every few KiB; these thresholds halve its CPU cost
        # (docs/benchmarks.md, "Media transfer").
        environment=(
            ("MALLOC_MMAP_THRESHOLD_", "4194304"),
            ("MALLOC_TRIM_THRESHOLD_", "67108864"),
        ),
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
    ),
)


def by_name(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(name)
