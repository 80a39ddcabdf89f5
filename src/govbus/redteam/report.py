"""Red-team results for people (rich tables), machines (one JSON document) and CI (JUnit XML).

None of them holds a case's text: ids, categories, verdicts and check ids only, so a report
can be published without republishing the attacks.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from govbus.redteam.runner import CaseResult, CategoryStats, RunReport
from govbus.redteam.thresholds import Gate, GateReport

__all__ = ["render_table", "report_json", "report_junit", "summary_line"]

#: Missed attacks and false positives listed in the table output (the JSON lists every case).
MAX_LISTED: Final = 20


def report_json(
    report: RunReport, gates: GateReport, thresholds_file: str | Path | None = None
) -> dict[str, Any]:
    """The JSON document of a run (see ``govbus redteam run --help`` for its keys)."""
    return {
        "policy": {
            "name": report.policy.name,
            "version": report.policy.version,
            "sha256": report.policy.sha256,
        },
        "categories": {name: _category(s) for name, s in report.categories.items()},
        "benign": {
            "cases": report.benign.cases,
            "false_positives": report.benign.false_positives,
            "false_positive_rate": report.benign.false_positive_rate,
            "by_source": {
                name: {
                    "cases": s.cases,
                    "false_positives": s.false_positives,
                    "false_positive_rate": s.false_positive_rate,
                }
                for name, s in report.by_source.items()
            },
        },
        "latency_us": {"p50": report.latency_p50_us, "p99": report.latency_p99_us},
        "thresholds": {
            "file": str(thresholds_file) if thresholds_file is not None else None,
            "gates": [g.as_dict() for g in gates.gates],
            "skipped": list(gates.skipped),
            "passed": gates.passed,
        },
        "passed": gates.passed,
        "cases": [
            {
                "id": r.case.id,
                "category": r.case.category,
                "expect": r.case.expect,
                "got": r.got,
                "checks": list(r.checks),
            }
            for r in report.results
        ],
    }


def _category(stats: CategoryStats) -> dict[str, Any]:
    low, high = stats.wilson
    return {
        "cases": stats.cases,
        "detected": stats.detected,
        "detection_rate": stats.detection_rate,
        "wilson_low": low,
        "wilson_high": high,
    }


def report_junit(report: RunReport) -> str:
    """A JUnit XML document: a testsuite per attack category and per benign source, a testcase
    per case, a failure for each missed attack and each false positive."""
    suites: dict[str, list[CaseResult]] = defaultdict(list)
    for result in report.results:
        case = result.case
        suites[case.category if case.is_attack else f"benign/{case.source}"].append(result)
    root = ET.Element("testsuites", name="govbus redteam")
    total = failures = 0
    seconds = 0.0
    for name in sorted(suites):
        results = suites[name]
        failed = sum(not r.ok for r in results)
        spent = sum(r.latency_ns for r in results) / 1e9
        suite = ET.SubElement(
            root,
            "testsuite",
            name=name,
            tests=str(len(results)),
            failures=str(failed),
            errors="0",
            skipped="0",
            time=f"{spent:.6f}",
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in (
            ("policy.name", report.policy.name),
            ("policy.version", report.policy.version),
            ("policy.sha256", report.policy.sha256),
        ):
            ET.SubElement(properties, "property", name=key, value=value)
        for result in results:
            testcase = ET.SubElement(
                suite,
                "testcase",
                name=result.case.id,
                classname=f"redteam.{name}",
                file=result.case.file,
                line=str(result.case.line),
                time=f"{result.latency_ns / 1e9:.6f}",
            )
            if not result.ok:
                failure = ET.SubElement(
                    testcase,
                    "failure",
                    type="missed_attack" if result.case.is_attack else "false_positive",
                    message=_problem(result),
                )
                failure.text = f"{result.case.where}: {_problem(result)}"
        total += len(results)
        failures += failed
        seconds += spent
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("time", f"{seconds:.6f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _problem(result: CaseResult) -> str:
    if result.case.is_attack:
        return "attack not detected: the policy allowed it unchanged"
    by = f" by {', '.join(result.checks)}" if result.checks else ""
    return f"false positive: got {result.got}{by}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _verdict(gate: Gate | None) -> str:
    if gate is None:
        return "-"
    return "[green]pass[/green]" if gate.passed else "[bold red]FAIL[/bold red]"


def _limit(gate: Gate | None) -> str:
    if gate is None:
        return "-"
    return f"{'>=' if gate.kind == 'category' else '<='} {gate.limit:.1%}"


def render_table(report: RunReport, gates: GateReport, console: Console) -> None:
    """Print the tables, latency, misses and the summary line."""
    attacks = Table(title="Attack categories: detection", title_justify="left", box=box.SIMPLE_HEAD)
    attacks.add_column("category", overflow="fold")
    for column in ("cases", "detected", "rate", "Wilson 95%", "threshold"):
        attacks.add_column(column, justify="right", no_wrap=True)
    attacks.add_column("result", no_wrap=True)
    names = sorted(
        set(report.categories)
        | {g.target for g in gates.gates if g.kind == "category" and g.target}
    )
    for name in names:
        gate = gates.category(name)
        stats = report.categories.get(name)
        if stats is None:
            attacks.add_row(
                escape(name), "0", "0", "-", "-", _limit(gate), _verdict(gate) + " (no cases)"
            )
            continue
        low, high = stats.wilson
        attacks.add_row(
            escape(name),
            str(stats.cases),
            str(stats.detected),
            _rate(stats.detection_rate),
            f"{100 * low:.1f}-{100 * high:.1f}%",
            _limit(gate),
            _verdict(gate),
        )
    console.print(attacks)

    benign = Table(title="Benign cases: false positives", title_justify="left", box=box.SIMPLE_HEAD)
    benign.add_column("source", overflow="fold")
    for column in ("cases", "false positives", "rate", "threshold"):
        benign.add_column(column, justify="right", no_wrap=True)
    benign.add_column("result", no_wrap=True)
    for name, source in report.by_source.items():
        gate = gates.source(name)
        benign.add_row(
            escape(name),
            str(source.cases),
            str(source.false_positives),
            _rate(source.false_positive_rate),
            _limit(gate),
            _verdict(gate),
        )
    pooled = report.benign
    benign.add_section()
    benign.add_row(
        "[bold]pooled[/bold]",
        str(pooled.cases),
        str(pooled.false_positives),
        _rate(pooled.false_positive_rate if pooled.cases else None),
        _limit(gates.pooled),
        _verdict(gates.pooled),
    )
    console.print(benign)
    console.print(
        f"latency per evaluation: p50 {report.latency_p50_us:.1f} us, "
        f"p99 {report.latency_p99_us:.1f} us ({len(report.results)} evaluations)"
    )
    _list_misses(report, console)
    if gates.skipped:
        console.print(f"not gated (no variants without --mutate): {', '.join(gates.skipped)}")
    console.print(summary_line(report, gates), highlight=False, soft_wrap=True)


def _list_misses(report: RunReport, console: Console) -> None:
    for title, wrong in (
        ("missed attacks", [r for r in report.results if r.case.is_attack and not r.ok]),
        ("false positives", [r for r in report.results if not r.case.is_attack and not r.ok]),
    ):
        if not wrong:
            continue
        console.print(f"{title} ({len(wrong)}):")
        for result in wrong[:MAX_LISTED]:
            group = result.case.category if result.case.is_attack else result.case.source
            by = f" by {', '.join(result.checks)}" if result.checks else ""
            console.print(
                f"  {result.case.id} [{group}] got {result.got}{by} ({result.case.where})",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        if len(wrong) > MAX_LISTED:
            console.print(f"  ... and {len(wrong) - MAX_LISTED} more (--format json lists all)")


def summary_line(report: RunReport, gates: GateReport) -> str:
    """One line: the gate's verdict and the headline counts.

    Not "N passed, N failed": CI tooling reads that form as a test runner's own count.
    """
    attacks = [r for r in report.results if r.case.is_attack]
    detected = sum(r.ok for r in attacks)
    met = sum(g.passed for g in gates.gates)
    if not gates.gates:
        verdict = "red team: nothing gated"
    else:
        word = "PASS" if gates.passed else "FAIL"
        verdict = f"red team {word}: {met} of {len(gates.gates)} limits met"
    fp = report.benign.false_positives
    return (
        f"{verdict}; {detected} of {len(attacks)} attacks detected in "
        f"{len(report.categories)} categories; {fp} false positive{'' if fp == 1 else 's'} "
        f"in {report.benign.cases} benign cases; policy {report.policy.name} "
        f"{report.policy.version} ({report.policy.sha256[:12]})"
    )
