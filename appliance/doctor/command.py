"""`appliance doctor [--json] [--web-url URL]`: exit 0 when nothing fails, 1 when a check fails,
2 when the config cannot be read."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """The `doctor` sub-command on the CLI's sub-parsers."""
    doctor = sub.add_parser(
        "doctor",
        help="check every part of the box; a verdict and a fix for each (exit 1 if any fails)",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--web-url",
        default=None,
        help="how to reach the web service (default: config recording.web_url, else "
        "http://127.0.0.1:<web.port>)",
    )


def run(args: argparse.Namespace) -> int:
    """Raises ConfigError (the CLI prints it and exits 2) when the config cannot be loaded."""
    from appliance.config import load
    from appliance.doctor.model import DoctorContext
    from appliance.doctor.report import as_json, as_table
    from appliance.doctor.runner import run_doctor

    data_dir = Path(args.data_dir).resolve()
    settings = load(data_dir, Path(args.config).resolve() if args.config else None)
    from appliance.observability.logs import configure_logging

    logging_config = settings.config.logging
    configure_logging(
        logging_config.format, args.log_level or logging_config.level, service="doctor"
    )
    # aioice reports each TURN transaction at INFO; the report says what matters.
    logging.getLogger("aioice").setLevel(logging.WARNING)
    config = settings.config
    web_url = args.web_url or config.recording.web_url or f"http://127.0.0.1:{config.web.port}"
    report = asyncio.run(run_doctor(DoctorContext(settings, web_url)))
    if args.json:
        print(as_json(report))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(as_table(report, colour=colour))
    sys.stdout.flush()
    return report.exit_status
