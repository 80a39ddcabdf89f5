"""``govbus drill run`` and ``govbus drill schema``: failure drills as a CI gate."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from rich.console import Console

from govbus.cli.redteam import _stdout_console
from govbus.drills import DrillResult, drill_schema, find_drills, run_drills
from govbus.drills.report import render_table, report_json, report_junit, summary_line


def drill_run(
    paths: Sequence[str],
    *,
    output: str = "table",
    disable: Sequence[str] = (),
    progress: bool = True,
) -> int:
    """Run every drill; exit 0 when all pass, 1 when one fails (2: bad input)."""
    files = find_drills(list(paths) or ["drills"])
    notes = Console(stderr=True, highlight=False)
    show = progress and output == "table"

    def done(result: DrillResult) -> None:
        if show:
            mark = "pass" if result.passed else "FAIL"
            notes.print(f"  {mark}  {result.name} ({result.seconds:.1f}s)")

    if show:
        off = f", {', '.join(disable)} switched off" if disable else ""
        notes.print(f"running {len(files)} drill(s){off}")
    results = asyncio.run(run_drills(files, disable=disable, on_result=done))
    if output == "json":
        print(report_json(results))
    elif output == "junit":
        print(report_junit(results))
    else:
        console = _stdout_console()
        render_table(results, console)
        console.print(summary_line(results, disable))
    return 0 if all(r.passed for r in results) else 1


def print_schema() -> int:
    json.dump(drill_schema(), sys.stdout, indent=2)
    print()
    return 0
