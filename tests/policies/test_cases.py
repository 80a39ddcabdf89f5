"""Runs every ``policies/*.cases.yaml`` against its policy: every case gets its verdict and
every check is seen both allowing and denying."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.examples.finance import create_app
from govbus.policy import load_policy
from govbus.policy.cases import Case, load_cases, run_cases

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CASE_FILES = sorted(POLICIES.glob("*.cases.yaml"))
CARDS = {card.name: card for card in create_app(audit="memory://").registry.cards}


def policy_for(cases_file: Path) -> Path:
    return cases_file.with_name(cases_file.name.replace(".cases.yaml", ".yaml"))


def all_cases() -> list[object]:
    return [
        pytest.param(file, case, id=f"{file.stem}:{case.line} {case.note}")
        for file in CASE_FILES
        for case in load_cases(file)
    ]


def test_there_are_case_files() -> None:
    assert CASE_FILES, f"no *.cases.yaml under {POLICIES}"


@pytest.mark.parametrize(("file", "case"), all_cases())
def test_policy_case(file: Path, case: Case) -> None:
    report = run_cases(load_policy(policy_for(file)), [case], CARDS)
    [result] = report.results
    assert result.passed, f"{case.file}:{case.line}: {result.problem}"


@pytest.mark.parametrize("file", CASE_FILES, ids=lambda f: f.name)
def test_cases_show_every_check_allowing_and_denying(file: Path) -> None:
    report = run_cases(load_policy(policy_for(file)), load_cases(file), CARDS)
    assert report.coverage_percent == 100.0, f"{file.name}: not covered: {report.uncovered()}"
