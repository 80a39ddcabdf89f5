"""``govbus audit ...`` commands."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from govbus.audit import VerifyReport, verify_url


def run_audit_command(args: argparse.Namespace) -> int:
    """Run the ``govbus audit`` action ``args`` names (see :mod:`govbus.cli.args_audit`)."""
    return verify(args.url, output=args.format)


def verify(url: str, *, output: str = "table") -> int:
    report = verify_url(url)
    if output == "json":
        print(json.dumps(report_json(report)))
    else:
        print_report(Console(), url, report)
    return 0 if report.ok else 1


def report_json(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "records": report.records,
        "chains": report.chains,
        "node": report.node,
        "seq": report.seq,
        "problem": report.problem,
    }


def print_report(console: Console, url: str, report: VerifyReport) -> None:
    chains = len(report.chains)
    if report.ok:
        console.print(
            f"[green]audit chain verified[/green]: {report.records} records in {chains} "
            f"chain{'s' if chains != 1 else ''} ({url})"
        )
    else:
        console.print(
            f"[red]audit chain BROKEN[/red] at record {report.seq} of chain {report.node!r}: "
            f"{report.problem} ({url})"
        )
