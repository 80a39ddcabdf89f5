"""``govbus policy ...`` commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
