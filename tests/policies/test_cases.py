"""Runs every ``policies/*.cases.yaml`` against its policy; each case must get its verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from govbus.envelope import Message
from govbus.examples.finance import create_app
from govbus.policy import CheckInput, MessageScan, load_policy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CASE_FILES = sorted(POLICIES.glob("*.cases.yaml"))
CARDS = {card.name: card for card in create_app(audit="memory://").registry.cards}


def load_cases() -> list[Any]:
    params = []
    for file in CASE_FILES:
        cases = yaml.safe_load(file.read_text())["cases"]
        for index, case in enumerate(cases):
            params.append(pytest.param(file, case, id=f"{file.stem}[{index}] {case['note']}"))
    return params


def build_message(case: dict[str, Any]) -> Message:
    raw = dict(case["message"])
    payload = dict(raw.get("payload", {}))
    for key, length in (case.get("fill") or {}).items():
        payload[key] = "x" * int(length)
    raw["payload"] = payload
    return Message.from_dict(raw)


def test_there_are_case_files() -> None:
    assert CASE_FILES, f"no *.cases.yaml under {POLICIES}"


@pytest.mark.parametrize(("file", "case"), load_cases())
def test_policy_case(file: Path, case: dict[str, Any]) -> None:
    policy = load_policy(file.with_name(file.name.replace(".cases.yaml", ".yaml")))
    message = build_message(case)
    recipient = CARDS[case["recipient"]] if case.get("recipient") else None
    evaluation = policy.evaluate(
        CheckInput(
            message=message,
            recipient=recipient,
            sender=CARDS.get(message.sender),
            now=datetime.now(UTC),
            scan=MessageScan(message),
        )
    )
    verdict = "allow" if evaluation.allowed else "deny"
    assert verdict == case["want"], [r.as_record() for r in evaluation.results]
    if "want_check" in case:
        assert evaluation.deciding is not None
        assert evaluation.deciding.check_id == case["want_check"]


def test_cases_show_every_check_allowing_and_denying() -> None:
    """Coverage: every check of each policy is seen to allow and to deny in its cases."""
    for file in CASE_FILES:
        policy = load_policy(file.with_name(file.name.replace(".cases.yaml", ".yaml")))
        seen: dict[str, set[str]] = {c.id: set() for c in policy.checks}
        for case in yaml.safe_load(file.read_text())["cases"]:
            message = build_message(case)
            recipient = CARDS[case["recipient"]] if case.get("recipient") else None
            evaluation = policy.evaluate(
                CheckInput(
                    message=message,
                    recipient=recipient,
                    sender=None,
                    now=datetime.now(UTC),
                    scan=MessageScan(message),
                )
            )
            for result in evaluation.results:
                seen[result.check_id].add("deny" if result.outcome == "deny" else result.outcome)
        missing = {cid: {"allow", "deny"} - s for cid, s in seen.items() if {"allow", "deny"} - s}
        assert not missing, f"{file.name}: checks not seen both ways: {missing}"
