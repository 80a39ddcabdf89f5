"""Drill results for people (a table), for machines (JSON) and for CI (JUnit XML)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from govbus.drills.runner import DrillResult


def report_json(results: Sequence[DrillResult]) -> str:
    return json.dumps(
        {
            "passed": all(r.passed for r in results),
            "drills": [r.as_dict() for r in results],
        },
        indent=2,
        default=str,
    )


def report_junit(results: Sequence[DrillResult]) -> str:
    failures = sum(1 for r in results if r.failures and r.error is None)
    errors = sum(1 for r in results if r.error is not None)
    suite = ET.Element(
        "testsuite",
        name="govbus.drills",
        tests=str(len(results)),
        failures=str(failures),
        errors=str(errors),
        time=f"{sum(r.seconds for r in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"drills.{result.proves}",
            name=result.name,
            time=f"{result.seconds:.3f}",
            file=result.source,
        )
        if result.error is not None:
            ET.SubElement(case, "error", message=result.error).text = result.error
        elif result.failures:
            text = "\n".join(_failure_line(c.name, c.expected, c.actual) for c in result.failures)
            ET.SubElement(
                case, "failure", message=f"{len(result.failures)} check(s) failed"
            ).text = text
        ET.SubElement(case, "system-out").text = json.dumps(result.evidence, default=str)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _failure_line(name: str, expected: Any, actual: Any) -> str:
    return f"{name}: expected {expected}, got {actual}"


def _evidence_text(result: DrillResult) -> str:
    ev = result.evidence
    if not ev:
        return ""
    parts = []
    outcomes = ev.get("outcomes") or {}
    parts.append(" ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    fallbacks = ev.get("fallbacks") or {}
    if fallbacks:
        parts.append("fallback " + ", ".join(f"{k}x{v}" for k, v in sorted(fallbacks.items())))
    if ev.get("dead_letters"):
        parts.append(f"dlq {ev['dead_letters']}")
    spool = ev.get("spool")
    if spool:
        parts.append(f"spooled {spool['spooled']}, replayed {spool['replayed']}")
    bus = ev.get("bus") or {}
    for restart in bus.get("restarts") or ():
        parts.append(
            f"nats down {restart['down_ms'] / 1000:.1f} s with {restart['in_flight_at_stop']} "
            f"in flight, {restart['sent_while_down']} sent while down"
        )
    if bus.get("publishes_failed"):
        parts.append(f"{bus['publishes_failed']} publish(es) failed")
    if bus.get("duplicate_deliveries"):
        parts.append(f"{bus['duplicate_deliveries']} redelivered, handled once")
    latency = ev.get("latency_ms") or {}
    if latency.get("max") is not None:
        parts.append(f"p50 {latency['p50']:.0f} ms, max {latency['max']:.0f} ms")
    return "; ".join(p for p in parts if p)


def render_table(results: Sequence[DrillResult], console: Console) -> None:
    table = Table(box=box.SIMPLE_HEAD, title="drills", title_justify="left")
    table.add_column("drill")
    table.add_column("fault")
    table.add_column("proves")
    table.add_column("result")
    table.add_column("evidence")
    table.add_column("s", justify="right")
    for r in results:
        verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
        table.add_row(
            escape(r.name),
            escape(", ".join(dict.fromkeys(r.faults)) or "-"),
            r.proves,
            verdict,
            escape(_evidence_text(r)),
            f"{r.seconds:.1f}",
        )
    console.print(table)
    for r in results:
        if r.passed:
            continue
        console.print(f"[red]FAIL[/red] {escape(r.name)} ({escape(r.source)}):")
        if r.error is not None:
            console.print(f"  error: {escape(r.error)}")
        for check in r.failures:
            console.print("  " + escape(_failure_line(check.name, check.expected, check.actual)))


def summary_line(results: Sequence[DrillResult], disabled: Sequence[str] = ()) -> str:
    failed = [r.name for r in results if not r.passed]
    off = f" with {', '.join(disabled)} switched off" if disabled else ""
    seconds = sum(r.seconds for r in results)
    if failed:
        return (
            f"drills{off}: {len(failed)} of {len(results)} failed ({', '.join(failed)}), "
            f"{seconds:.1f}s"
        )
    return f"drills{off}: all {len(results)} passed, {seconds:.1f}s"
