"""The report as an aligned plain-text table (colour on a terminal only) or as JSON."""

from __future__ import annotations

import json
import textwrap

from appliance.doctor.model import Report, Status

COLOURS = {
    Status.OK: "\033[32m",
    Status.WARN: "\033[33m",
    Status.FAIL: "\033[31;1m",
    Status.SKIP: "\033[2m",
}
RESET = "\033[0m"
WIDTH = 100


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, ensure_ascii=False)


def as_table(report: Report, *, colour: bool = False) -> str:
    name_width = max((len(c.name) for c in report.checks), default=4)
    status_width = 4
    indent = " " * (status_width + 2 + name_width + 2)
    lines = []
    for check in report.checks:
        status = check.status.value.upper().ljust(status_width)
        if colour:
            status = f"{COLOURS[check.status]}{status}{RESET}"
        head = f"{status}  {check.name.ljust(name_width)}  "
        summary = textwrap.wrap(check.summary, WIDTH - len(indent)) or [""]
        lines.append(head + summary[0])
        lines += [indent + rest for rest in summary[1:]]
        if check.status in (Status.WARN, Status.FAIL) and check.fix:
            fix = textwrap.wrap("fix: " + check.fix, WIDTH - len(indent))
            lines += [indent + part for part in fix]
    counts = {s: sum(1 for c in report.checks if c.status is s) for s in Status}
    if report.ok and not counts[Status.WARN]:
        verdict = "Everything checked is fine."
    elif report.ok:
        verdict = f"Working, with {counts[Status.WARN]} warning(s)."
    else:
        verdict = f"{counts[Status.FAIL]} check(s) failed, {counts[Status.WARN]} warning(s)."
    lines += ["", verdict]
    return "\n".join(lines) + "\n"
