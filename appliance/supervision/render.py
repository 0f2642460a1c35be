"""Render the service declaration as a supervisord config and as systemd units."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from appliance.supervision.services import SERVICES, ServiceSpec

INSTALLED_PREFIX = "/opt/appliance/venv/bin/appliance"
INSTALLED_DATA_DIR = "/var/lib/appliance"
INSTALLED_CONFIG = "/etc/appliance/appliance.toml"
TARGET = "appliance.target"


def _quote(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def supervisord_conf(
    base_command: Sequence[str], run_dir: Path, services: Sequence[ServiceSpec] = SERVICES
) -> str:
    """A config for `supervisord -n`: every service's output goes to supervisord's own stdout."""
    lines = [
        "; Rendered by `appliance up` from appliance/supervision/services.py. Do not edit.",
        "[supervisord]",
        "nodaemon=true",
        f"pidfile={run_dir / 'supervisord.pid'}",
        "logfile=/dev/null",
        "logfile_maxbytes=0",
        "loglevel=warn",
        f"childlogdir={run_dir}",
        "",
        "[unix_http_server]",
        f"file={run_dir / 'supervisor.sock'}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{run_dir / 'supervisor.sock'}",
    ]
    for priority, spec in enumerate(services, start=1):
        lines += [
            "",
            f"[program:{spec.name}]",
            f"command={_quote([*base_command, *spec.command])}",
            f"priority={priority * 10}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "stopsignal=TERM",
            f"stopwaitsecs={spec.stop_wait_seconds}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
        ]
        if spec.environment:
            pairs = ",".join(f'{name}="{value}"' for name, value in spec.environment)
            lines.append(f"environment={pairs}")
    return "\n".join(lines) + "\n"


def systemd_units(services: Sequence[ServiceSpec] = SERVICES) -> dict[str, str]:
    """Unit files for the installed appliance, keyed by file name."""
    base = [INSTALLED_PREFIX, "--data-dir", INSTALLED_DATA_DIR, "--config", INSTALLED_CONFIG]
    units: dict[str, str] = {
        TARGET: "\n".join(
            [
                "# Rendered by `appliance units` from appliance/supervision/services.py.",
                "[Unit]",
                "Description=Appliance: chat, presence, files and calls",
                "Wants=" + " ".join(f"appliance-{s.name}.service" for s in services),
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )
    }
    for spec in services:
        after = ["network-online.target", *(f"appliance-{n}.service" for n in spec.start_after)]
        units[f"appliance-{spec.name}.service"] = "\n".join(
            [
                "# Rendered by `appliance units` from appliance/supervision/services.py.",
                "[Unit]",
                f"Description=Appliance {spec.name}: {spec.description}",
                "After=" + " ".join(after),
                "Wants=network-online.target",
                f"PartOf={TARGET}",
                "",
                "[Service]",
                "Type=simple",
                "User=appliance",
                "Group=appliance",
                *(f"Environment={name}={value}" for name, value in spec.environment),
                f"ExecStart={_quote([*base, *spec.command])}",
                "Restart=on-failure",
                "RestartSec=2",
                f"TimeoutStopSec={spec.stop_wait_seconds}",
                "NoNewPrivileges=yes",
                "ProtectSystem=strict",
                "ProtectHome=yes",
                "PrivateTmp=yes",
                f"ReadWritePaths={INSTALLED_DATA_DIR}",
                "LimitNOFILE=65536",
                "",
                "[Install]",
                f"WantedBy={TARGET}",
                "",
            ]
        )
    return units
