"""``govbus policy ...`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from govbus import __version__
from govbus.errors import ConfigError
from govbus.policy import (
    Finding,
    diff,
    explain,
    explain_html,
    lint,
    load_policy,
)
from govbus.policy.approvals import find_approval, load_approvals
from govbus.policy.cases import load_cases, run_cases
from govbus.registry import AgentCard

if TYPE_CHECKING:
    from govbus.audit import AuditRecord
    from govbus.orchestrator.replay import ReplayReport, ShadowReport, Tally


def run_policy_command(args: argparse.Namespace) -> int:
    """Run the ``govbus policy`` action ``args`` names (see :mod:`govbus.cli.args_policy`)."""
    if args.policy_command == "test":
        return policy_test(args.path, min_coverage=args.min_coverage, output=args.format)
    if args.policy_command == "lint":
        return policy_lint(args.file, output=args.format)
    if args.policy_command == "explain":
        return policy_explain(args.file, output=args.format, approvals=args.approvals)
    if args.policy_command == "diff":
        return policy_diff(args.old, args.new, cases=args.cases, output=args.format)
    if args.policy_command == "replay":
        return policy_replay(
            args.audit,
            args.policy,
            since=args.since,
            until=args.until,
            app=args.app,
            limit=args.limit,
            output=args.format,
            progress=not args.no_progress,
        )
    if args.policy_command == "shadow-report":
        return policy_shadow_report(
            args.audit, policy=args.policy, since=args.since, until=args.until, output=args.format
        )
    return policy_hash(args.file)


def policy_hash(files: Sequence[str]) -> int:
    for file in files:
        policy = load_policy(file)
        print(f"{policy.sha256}  {file}")
    return 0


def policy_lint(files: Sequence[str], *, output: str = "text") -> int:
    """``govbus policy lint``: print findings; exit 1 on any error finding, else 0."""
    findings = lint(files)
    errors = sum(1 for f in findings if f.severity == "error")
    if output == "json":
        print(
            json.dumps(
                {
                    "files": len(files),
                    "errors": errors,
                    "warnings": len(findings) - errors,
                    "findings": [f.as_dict() for f in findings],
                },
                indent=2,
            )
        )
    elif output == "sarif":
        print(json.dumps(_sarif(findings), indent=2))
    else:
        for finding in findings:
            print(finding)
        noun = "file" if len(files) == 1 else "files"
        summary = f"{len(files)} {noun}, {len(findings)} findings"
        if findings:
            summary += f" ({errors} errors, {len(findings) - errors} warnings)"
        print(summary)
    return 1 if errors else 0


def _sarif(findings: Sequence[Finding]) -> dict[str, Any]:
    """A minimal SARIF 2.1.0 log: one run, one rule per finding code."""
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "govbus policy lint",
                        "version": __version__,
                        "rules": [
                            {"id": code, "shortDescription": {"text": code.replace("_", " ")}}
                            for code in codes
                        ],
                    }
                },
                "results": [
                    {
                        "ruleId": f.code,
                        "ruleIndex": index[f.code],
                        "level": f.severity,
                        "message": {"text": f.message},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": Path(f.file).as_posix()},
                                    "region": {"startLine": f.line, "startColumn": f.column},
                                }
                            }
                        ],
                    }
                    for f in findings
                ],
            }
        ],
    }


def policy_explain(file: str, *, output: str = "md", approvals: str | None = None) -> int:
    """``govbus policy explain``: print the plain-language account of a policy."""
    policy = load_policy(file)
    approval = find_approval(policy, load_approvals(approvals)) if approvals is not None else None
    render = explain_html if output == "html" else explain
    print(render(policy, approval), end="")
    return 0


def _example_cards() -> dict[str, AgentCard]:
    """The cards of the example app's agents: the recipients cases name (default.cases.yaml)."""
    from govbus.examples.finance import create_app

    return {card.name: card for card in create_app(audit="memory://").registry.cards}


def policy_diff(old: str, new: str, *, cases: str | None = None, output: str = "text") -> int:
    """``govbus policy diff``: print the semantic changes (and changed case outcomes); exit 0."""
    before = load_policy(old)
    after = load_policy(new)
    case_list = load_cases(cases) if cases is not None else None
    cards = _example_cards() if case_list is not None else None
    changes = diff(before, after, cases=case_list, cards=cards)
    if output == "json":
        print(
            json.dumps(
                {
                    "old": {"file": old, "sha256": before.sha256},
                    "new": {"file": new, "sha256": after.sha256},
                    "changes": [c.as_dict() for c in changes],
                },
                indent=2,
            )
        )
        return 0
    print(f"{old} ({before.sha256[:12]}) → {new} ({after.sha256[:12]})")
    for change in changes:
        print(f"  {change}")
    print(f"{len(changes)} change{'' if len(changes) == 1 else 's'}")
    return 0


def _case_files(paths: Sequence[str]) -> list[tuple[Path, Path]]:
    """(cases file, policy file) pairs for files, policies and folders."""
    pairs = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob("*.cases.yaml"))
            if not found:
                raise ConfigError(f"{path}: no *.cases.yaml files in this folder")
            files = found
        elif path.name.endswith(".cases.yaml"):
            files = [path]
        else:
            files = [path.with_name(path.name.removesuffix(".yaml") + ".cases.yaml")]
        for cases in files:
            if not cases.exists():
                raise ConfigError(f"{cases}: cases file not found")
            pairs.append((cases, cases.with_name(cases.name.replace(".cases.yaml", ".yaml"))))
    return pairs


def policy_test(paths: Sequence[str], *, min_coverage: float = 0.0, output: str = "text") -> int:
    """``govbus policy test``: run cases, print pass/fail per case and coverage per check."""
    cards = _example_cards()
    reports = []
    for cases_file, policy_file in _case_files(paths):
        report = run_cases(load_policy(policy_file), load_cases(cases_file), cards)
        reports.append((cases_file, policy_file, report))
    ok = all(r.passed and r.coverage_percent >= min_coverage for _, _, r in reports)
    if output == "json":
        print(
            json.dumps(
                {
                    "ok": ok,
                    "files": [
                        {
                            "cases": str(c),
                            "policy": str(p),
                            "passed": r.passed,
                            "coverage_percent": round(r.coverage_percent, 1),
                            "uncovered": r.uncovered(),
                            "results": [
                                {
                                    "note": x.case.note,
                                    "line": x.case.line,
                                    "passed": x.passed,
                                    "verdict": x.verdict,
                                    "deciding": x.deciding,
                                    "problem": x.problem,
                                }
                                for x in r.results
                            ],
                        }
                        for c, p, r in reports
                    ],
                }
            )
        )
        return 0 if ok else 1
    for cases_file, policy_file, report in reports:
        print(f"{cases_file} (policy {policy_file})")
        for result in report.results:
            mark = "PASS" if result.passed else "FAIL"
            detail = f": {result.problem}" if result.problem else ""
            print(f"  {mark} {cases_file}:{result.case.line} {result.case.note}{detail}")
        print(f"  coverage: {report.coverage_percent:.0f}% of (check, allow|deny) pairs")
        for check, missing in report.uncovered().items():
            print(f"    {check}: never seen to {' or '.join(missing)}")
    total = sum(len(r.results) for _, _, r in reports)
    failed = sum(1 for _, _, r in reports for x in r.results if not x.passed)
    low = [str(c) for c, _, r in reports if r.coverage_percent < min_coverage]
    # Not "N passed, N failed": CI reads that form as the test runner's own count.
    print(f"{total - failed} of {total} cases passed" + (f"; {failed} failed" if failed else ""))
    if low:
        print(f"coverage below {min_coverage:g}%: {', '.join(low)}")
    return 0 if ok else 1


# -- replay and shadow reports --------------------------------------------------------------------


def _window_problem(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {_when(since)} is not before --until {_when(until)}: the window is empty"
        )


def _where(url: str) -> str:
    """The audit URL as messages show it (the file for SQLite, no password); checks its syntax."""
    from govbus.audit.database import describe_url, normalize_url

    if url.strip().lower().startswith("memory:"):
        raise ConfigError(
            f"--audit {url}: an in-memory audit store lives only inside the process that wrote "
            "it; give the database URL or SQLite file the app audits to"
        )
    target = normalize_url(url)
    where = describe_url(target)
    try:
        target.get_dialect()  # an unknown driver would otherwise surface as a traceback
    except Exception as exc:
        raise ConfigError(f"cannot read the audit log at {where}: {exc}") from None
    return where


def _app_cards(ref: str) -> dict[str, AgentCard]:
    """The agent cards of the app ``ref`` (``MODULE:FACTORY``), built on in-memory bus and audit."""
    from govbus.orchestrator import load_app

    app = load_app(ref, bus="memory://", audit="memory://")
    return {card.name: card for card in app.registry.cards}


@contextmanager
def _reading(url: str, *, progress: bool) -> Iterator[Iterator[AuditRecord]]:
    """The audit records at ``url``, with a transient progress bar on stderr when asked."""
    from govbus.audit import count_url, iter_records_url

    records = iter_records_url(url)
    try:
        if not progress:
            yield records
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        total = count_url(url)
        columns = (
            TextColumn("reading audit records"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("records", total=total)
            yield _advancing(records, lambda: bar.advance(task))
    finally:
        _close(records)


def _close(records: Iterator[AuditRecord]) -> None:
    """Close the reader (a generator: its engine is disposed at once, not when collected)."""
    close = getattr(records, "close", None)
    if callable(close):
        close()


def _advancing(
    records: Iterable[AuditRecord], advance: Callable[[], None]
) -> Iterator[AuditRecord]:
    for record in records:
        advance()
        yield record


def policy_replay(
    audit: str,
    policy: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    app: str = "govbus.examples.finance:create_app",
    limit: int | None = None,
    output: str = "text",
    progress: bool = True,
) -> int:
    """``govbus policy replay``: the candidate on recorded decisions; exit 0 (2: bad input)."""
    from govbus.orchestrator.replay import replay_policy

    _window_problem(since, until)
    where = _where(audit)
    candidate = load_policy(policy)
    cards = _app_cards(app)
    with _reading(audit, progress=progress and sys.stderr.isatty()) as records:
        report = replay_policy(records, candidate, cards, since=since, until=until, limit=limit)
    if output == "json":
        print(json.dumps({"audit": where, "policy_file": policy, **report.as_dict()}, indent=2))
    else:
        for line in replay_text(report, where, policy):
            print(line)
    return 0


def policy_shadow_report(
    audit: str,
    *,
    policy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    output: str = "text",
) -> int:
    """``govbus policy shadow-report``: shadow records per candidate; exit 0 (2: bad input)."""
    from govbus.audit import iter_records_url
    from govbus.orchestrator.replay import shadow_report

    _window_problem(since, until)
    where = _where(audit)
    candidate = load_policy(policy) if policy is not None else None
    records = iter_records_url(audit)
    try:
        report = shadow_report(records, candidate=candidate, since=since, until=until)
    finally:
        _close(records)
    if output == "json":
        print(json.dumps({"audit": where, "policy_file": policy, **report.as_dict()}, indent=2))
    else:
        label = (
            f"{candidate.name} {candidate.version} ({candidate.sha256[:12]})"
            if candidate is not None
            else None
        )
        for line in shadow_text(report, where, label):
            print(line)
    return 0


def _n(count: int) -> str:
    return f"{count:,}"


def _when(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else "-"


def _eg(examples: Sequence[str]) -> str:
    return f"  e.g. {', '.join(examples)}" if examples else ""


def _plural(count: int, word: str) -> str:
    return f"{_n(count)} {word}{'' if count == 1 else 's'}"


def replay_text(report: ReplayReport, where: str, policy_file: str) -> list[str]:
    """The replay report for people (``--format text``); plain text, no markup."""
    c = report.candidate
    lines = [f"replay of {c.name} {c.version} ({c.sha256[:12]}, {policy_file}) on {where}"]
    window = ""
    if report.since is not None or report.until is not None:
        window = f" (window {_when(report.since)} .. {_when(report.until)})"
    if not report.decisions:
        lines.append(f"no decision records to replay{window}")
        lines.extend(f"  {u.count} unreadable: {u.what}" for u in report.unreadable)
        return lines
    lines.append(
        f"{_plural(report.decisions, 'decision')} recorded {_when(report.first)} .. "
        f"{_when(report.last)}{window}" + (" (stopped at --limit)" if report.truncated else "")
    )
    for e in report.enforced:
        p = e.policy
        lines.append(f"  enforced: {p.name} {p.version} ({p.sha256[:12]}): {_n(e.decisions)}")
    storage = ", ".join(f"{k} {_n(v)}" for k, v in report.storage.items())
    lines.append(f"  payload storage: {storage}")
    v = report.verdicts
    unchanged = v["allow->allow"] + v["deny->deny"]
    lines.append("")
    lines.append(
        f"verdicts: {_n(report.changed)} of {_n(report.decisions)} change "
        f"({_n(v['allow->deny'])} allow -> deny, {_n(v['deny->allow'])} deny -> allow); "
        f"{_n(unchanged)} unchanged ({_n(v['allow->allow'])} allow, {_n(v['deny->deny'])} deny)"
    )
    for change in report.changes:
        lines.append(f"  {change.count:>7,}  {change.describe()}{_eg(change.examples)}")
    lines.append("")
    lines.append("checks (outcome changes on the decisions where the check was compared):")
    for check in report.checks:
        name = f"{check.id} ({check.kind or '?'})" + ("" if check.in_candidate else " [removed]")
        parts = [f"{_n(check.compared)} compared" if check.compared else "not compared"]
        if check.transitions:
            parts.append(", ".join(f"{t.label} {_n(t.count)}" for t in check.transitions))
        elif check.compared:
            parts.append("unchanged")
        if check.decides_now:
            parts.append(f"decides {_n(check.decides_now)} now")
        if check.no_longer_decides:
            parts.append(f"no longer decides {_n(check.no_longer_decides)}")
        not_replayed = sum(t.count for t in check.not_replayed)
        if not_replayed:
            parts.append(f"not replayed on {_n(not_replayed)}")
        lines.append(f"  {name}: {'; '.join(parts)}")
        for t in check.transitions:
            if t.examples:
                lines.append(f"      {t.label} e.g. {', '.join(t.examples)}")
    skipped = [(check, why) for check in report.checks for why in check.not_replayed]
    if skipped:
        lines.append("")
        lines.append("not replayed (left out of those decisions' comparison on both sides):")
        for check, why in skipped:
            lines.append(
                f"  {check.id} ({check.kind or '?'}) on {_plural(why.count, 'decision')}: "
                f"{why.what}"
            )
    if report.raised is not None:
        lines.append("")
        lines.append(
            f"{_plural(report.raised.count, 'output')} raised back to their cause's "
            "classification (the candidate does not permit the lowering)"
            + _eg(report.raised.examples)
        )
    if report.unreadable:
        lines.append("")
        lines.append("records that could not be replayed:")
        lines.extend(f"  {_n(u.count)}: {u.what}{_eg(u.examples)}" for u in report.unreadable)
    if report.unknown_recipients:
        names = ", ".join(f"{k} {_n(n)}" for k, n in list(report.unknown_recipients.items())[:10])
        more = len(report.unknown_recipients) - 10
        lines.append("")
        lines.append(
            "recipients not in the app's registry (replayed as client addresses, without a "
            f"card): {names}" + (f", and {more} more" if more > 0 else "")
        )
    if report.notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(f"  - {note}" for note in report.notes)
    return lines


def _tally_line(t: Tally) -> str:
    return f"{_n(t.count)} {t.what}{_eg(t.examples)}"


def shadow_text(report: ShadowReport, where: str, candidate: str | None) -> list[str]:
    """The shadow report for people (``--format text``); plain text, no markup."""
    window = ""
    if report.since is not None or report.until is not None:
        window = f" (window {_when(report.since)} .. {_when(report.until)})"
    if not report.candidates:
        what = f"candidate {candidate}" if candidate else "any candidate"
        return [f"no shadow records or shadowing starts for {what} in {where}{window}"]
    lines = [f"shadow report on {where}{window}"]
    for entry in report.candidates:
        p = entry.policy
        compared = (
            f"{_n(entry.compared)} decisions compared"
            if entry.compared is not None
            else "decisions compared unknown (no admin start record naming it was read)"
        )
        lines.append("")
        lines.append(f"candidate {p.name} {p.version} ({p.sha256[:12]}): {compared}")
        if entry.nodes:
            lines.append(f"  nodes: {', '.join(entry.nodes)}")
        share = ""
        if entry.compared:
            share = f" ({100 * entry.differing / entry.compared:.1f}%)"
        v = entry.verdicts
        lines.append(
            f"  differ: {_n(entry.differing)}{share}: {_n(v['allow->deny'])} allow -> deny, "
            f"{_n(v['deny->allow'])} deny -> allow, {_n(v['same'])} same verdict "
            "(only check outcomes differ)"
        )
        lines.extend(f"    {_tally_line(t).replace('->', ' -> ', 1)}" for t in entry.changes)
        for check in entry.checks:
            flips = []
            if check.allow_to_deny:
                flips.append(f"turns {_n(check.allow_to_deny)} allows into denials")
            if check.deny_to_allow:
                flips.append(f"turns {_n(check.deny_to_allow)} denials into allows")
            lines.append(
                f"  {check.id}: changed on {_n(check.changed)}"
                + (f"; {', '.join(flips)}" if flips else "")
            )
            for t in check.transitions:
                codes = ", ".join(f"{k} {_n(n)}" for k, n in t.codes.items())
                lines.append(
                    f"      {t.label} {_n(t.count)}"
                    + (f" ({codes})" if codes else "")
                    + _eg(t.examples)
                )
    return lines
