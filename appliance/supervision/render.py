"""Render the service declaration as a supervisord config and as systemd units."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from appliance.supervision.services import JOBS, SERVICES, JobSpec, ServiceSpec

INSTALLED_PREFIX = "/opt/appliance/venv/bin/appliance"
INSTALLED_WEBUI = "/opt/appliance/webui"
INSTALLED_DATA_DIR = "/var/lib/appliance"
INSTALLED_CONFIG_DIR = "/etc/appliance"
INSTALLED_CONFIG = f"{INSTALLED_CONFIG_DIR}/appliance.toml"
TARGET = "appliance.target"
RELOAD = "appliance-reload"
HEADER = "# Rendered by `appliance units` from appliance/supervision/services.py."
SUPERVISOR_SOCKET = "supervisor.sock"
#: supervisord rotates a quiet service's log file at this size, keeping this many old ones.
LOG_MAX_BYTES = 1024 * 1024
LOG_BACKUPS = 3

# Hardening every service unit gets (docs/install.md explains each and the exposure it earns).
HARDENING = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateMounts=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectProc=invisible",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "RemoveIPC=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallErrorNumber=EPERM",
    "UMask=0027",
)


def _quote(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def _sv(text: str) -> str:
    """A value for supervisord's config, which expands `%(name)s`: a literal % is doubled."""
    return text.replace("%", "%%")


def supervisor_socket(run_dir: Path) -> Path:
    return run_dir / SUPERVISOR_SOCKET


def supervisord_conf(
    base_command: Sequence[str],
    run_dir: Path,
    services: Sequence[ServiceSpec] = SERVICES,
    *,
    python: str = sys.executable,
) -> str:
    """A config for `supervisord -n`. A service's output goes to supervisord's own stdout (the
    console), except for a service declared `console="errors"`: its output goes to
    `<run_dir>/<name>.log` (rotated) and only its error lines reach the console.

    The control socket lives in the 0700 run dir and is itself 0700: only the user running
    `appliance up` can control the services (the web service does, after the set-up wizard)."""
    socket = supervisor_socket(run_dir)
    lines = [
        "; Rendered by `appliance up` from appliance/supervision/services.py. Do not edit.",
        "[supervisord]",
        "nodaemon=true",
        f"pidfile={_sv(str(run_dir / 'supervisord.pid'))}",
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=warn",
        f"childlogdir={_sv(str(run_dir))}",
        "",
        "[unix_http_server]",
        f"file={_sv(str(socket))}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_sv(str(socket))}",
    ]
    for priority, spec in enumerate(services, start=1):
        command = [*base_command, *spec.command]
        environment = list(spec.environment)
        if spec.rewrites_config:
            environment += [
                ("APPLIANCE_SUPERVISOR", "supervisord"),
                ("APPLIANCE_SUPERVISOR_SOCKET", str(socket)),
            ]
        lines += [
            "",
            f"[program:{spec.name}]",
        ]
        if spec.console == "errors":
            log = run_dir / f"{spec.name}.log"
            wrapper = [python, "-m", "appliance.supervision.logsplit", "--name", spec.name]
            lines += [
                f"command={_sv(_quote([*wrapper, '--log', str(log), '--', *command]))}",
                "redirect_stderr=false",
                f"stdout_logfile={_sv(str(log))}",
                f"stdout_logfile_maxbytes={LOG_MAX_BYTES}",
                f"stdout_logfile_backups={LOG_BACKUPS}",
                "stderr_logfile=/dev/stdout",
                "stderr_logfile_maxbytes=0",
            ]
        else:
            lines += [
                f"command={_sv(_quote(command))}",
                "redirect_stderr=true",
                "stdout_logfile=/dev/stdout",
                "stdout_logfile_maxbytes=0",
            ]
        lines += [
            f"priority={priority * 10}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "stopsignal=TERM",
            f"stopwaitsecs={spec.stop_wait_seconds}",
            "stopasgroup=true",
            "killasgroup=true",
        ]
        if environment:
            pairs = ",".join(f'{name}="{_sv(value)}"' for name, value in environment)
            lines.append(f"environment={pairs}")
    return "\n".join(lines) + "\n"


def _service_unit(spec: ServiceSpec) -> str:
    base = [INSTALLED_PREFIX, "--data-dir", INSTALLED_DATA_DIR, "--config", INSTALLED_CONFIG]
    after = ["network-online.target", *(f"appliance-{n}.service" for n in spec.start_after)]
    environment = list(spec.environment)
    writable = [INSTALLED_DATA_DIR]
    if spec.rewrites_config:
        # The set-up wizard rewrites the config (temp file + rename in its folder); the
        # appliance-reload path unit then restarts the services.
        environment += [("APPLIANCE_SUPERVISOR", "systemd")]
        writable.append(INSTALLED_CONFIG_DIR)
    if spec.name == "web":
        environment.append(("APPLIANCE_WEB__WEBUI_DIR", INSTALLED_WEBUI))
    families = ["AF_UNIX", "AF_INET", "AF_INET6"]
    if spec.reads_addresses:
        families.append("AF_NETLINK")
    if spec.binds_privileged_ports:
        capabilities = [
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        ]
    else:
        capabilities = ["CapabilityBoundingSet="]
    return "\n".join(
        [
            HEADER,
            "[Unit]",
            f"Description=Appliance {spec.name}: {spec.description}",
            "After=" + " ".join(after),
            "Wants=network-online.target",
            f"PartOf={TARGET}",
            *(f"Conflicts={unit}" for unit in spec.conflicts),
            "",
            "[Service]",
            "Type=simple",
            "User=appliance",
            "Group=appliance",
            *(f"Environment={name}={value}" for name, value in environment),
            f"ExecStart={_quote([*base, *spec.command])}",
            # journalctl -t appliance-web (docs/observability.md)
            f"SyslogIdentifier=appliance-{spec.name}",
            "Restart=on-failure",
            "RestartSec=2",
            # Ended by its SIGTERM (rclone exits 143): a clean stop, not a failure.
            "SuccessExitStatus=143",
            f"TimeoutStopSec={spec.stop_wait_seconds}",
            "LimitNOFILE=65536",
            *capabilities,
            *HARDENING,
            "RestrictAddressFamilies=" + " ".join(families),
            "ReadWritePaths=" + " ".join(writable),
            "",
            "[Install]",
            f"WantedBy={TARGET}",
            "",
        ]
    )


def reload_script(services: Sequence[ServiceSpec] = SERVICES) -> str:
    """The shell script appliance-reload.service runs when the config file changed.

    It gives the file back to root:appliance 0640 (the web service rewrote it as its own user)
    and restarts the running services, once per new content: its own chown would otherwise
    trigger the path unit again."""
    units = " ".join(f"appliance-{s.name}.service" for s in services)
    return "; ".join(
        [
            f"f={INSTALLED_CONFIG}",
            "stamp=/run/appliance-reload/applied",
            '[ -f "$f" ] || exit 0',
            '[ "$(stat -c %U:%G:%a "$f")" = root:appliance:640 ]'
            ' || { chown root:appliance "$f" && chmod 0640 "$f"; }',
            'sum=$(sha256sum < "$f")',
            '[ "$sum" = "$(cat "$stamp" 2>/dev/null)" ] && exit 0',
            'echo "$sum" > "$stamp"',
            f"exec systemctl try-restart {units}",
        ]
    )


def _unit_escape(text: str) -> str:
    """A command line for ExecStart=: systemd expands % specifiers and $ variables."""
    return text.replace("%", "%%").replace("$", "$$")


def _reload_units(services: Sequence[ServiceSpec]) -> dict[str, str]:
    path_unit = "\n".join(
        [
            HEADER,
            "[Unit]",
            "Description=Appliance: apply a changed config (the set-up wizard rewrites it)",
            f"PartOf={TARGET}",
            "",
            "[Path]",
            f"PathChanged={INSTALLED_CONFIG}",
            f"Unit={RELOAD}.service",
            "",
            "[Install]",
            f"WantedBy={TARGET}",
            "",
        ]
    )
    service_unit = "\n".join(
        [
            HEADER,
            "[Unit]",
            "Description=Appliance: restore the config's owner and mode, restart the services",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart=/bin/sh -c {shlex.quote(_unit_escape(reload_script(services)))}",
            "RuntimeDirectory=appliance-reload",
            "RuntimeDirectoryPreserve=yes",
            # Root, but only to chown/chmod the config and to ask systemd for a restart.
            "CapabilityBoundingSet=CAP_CHOWN CAP_FOWNER",
            *HARDENING,
            "RestrictAddressFamilies=AF_UNIX",
            "PrivateNetwork=yes",
            f"ReadWritePaths={INSTALLED_CONFIG_DIR}",
            "",
        ]
    )
    return {f"{RELOAD}.path": path_unit, f"{RELOAD}.service": service_unit}


def _job_units(job: JobSpec) -> dict[str, str]:
    """A scheduled job: its oneshot service (hardened like the services, idle priority) and the
    timer that starts it. The timer is part of appliance.target: stopping the box stops it."""
    base = [INSTALLED_PREFIX, "--data-dir", INSTALLED_DATA_DIR, "--config", INSTALLED_CONFIG]
    after = ["network-online.target", *(f"appliance-{n}.service" for n in job.start_after)]
    service = "\n".join(
        [
            HEADER,
            "[Unit]",
            f"Description=Appliance {job.name}: {job.description}",
            "After=" + " ".join(after),
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            "User=appliance",
            "Group=appliance",
            f"ExecStart={_quote([*base, *job.command])}",
            f"SyslogIdentifier=appliance-{job.name}",
            f"TimeoutStartSec={job.timeout_seconds}",
            "Nice=10",
            "IOSchedulingClass=idle",
            "CapabilityBoundingSet=",
            *HARDENING,
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            f"ReadWritePaths={INSTALLED_DATA_DIR}",
            "",
        ]
    )
    timer = "\n".join(
        [
            HEADER,
            "[Unit]",
            f"Description=Appliance {job.name} timer: {job.description}",
            f"PartOf={TARGET}",
            "",
            "[Timer]",
            f"OnCalendar={job.on_calendar}",
            f"RandomizedDelaySec={job.randomized_delay}",
            f"Persistent={'true' if job.persistent else 'false'}",
            f"Unit=appliance-{job.name}.service",
            "",
            "[Install]",
            f"WantedBy={TARGET}",
            "",
        ]
    )
    return {f"appliance-{job.name}.service": service, f"appliance-{job.name}.timer": timer}


def systemd_units(
    services: Sequence[ServiceSpec] = SERVICES, jobs: Sequence[JobSpec] = JOBS
) -> dict[str, str]:
    """Unit files for the installed appliance, keyed by file name."""
    wanted = [f"appliance-{s.name}.service" for s in services] + [f"{RELOAD}.path"]
    wanted += [f"appliance-{j.name}.timer" for j in jobs]
    units: dict[str, str] = {
        TARGET: "\n".join(
            [
                HEADER,
                "[Unit]",
                "Description=Appliance: chat, presence, files and calls",
                "Wants=" + " ".join(wanted),
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )
    }
    for spec in services:
        units[f"appliance-{spec.name}.service"] = _service_unit(spec)
    units.update(_reload_units(services))
    for job in jobs:
        units.update(_job_units(job))
    return units
