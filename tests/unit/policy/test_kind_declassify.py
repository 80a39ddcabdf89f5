"""The ``declassify`` kind: the only way a classification may fall along a causal chain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from govbus.envelope import Actor, Message
from govbus.policy import CheckInput, MessageScan, Policy, PolicyError

LoadText = Callable[[str], Policy]

SPEC = """
    spec:
      roles: [compliance, advisor]
      checks:
        - id: public-summaries
          use: declassify
          rules:
            - senders: [summarizer]
              types: ["report.public_summary"]
              from: pii
              to: public
              require_roles: [compliance]
    """


def lowering(
    cause_level: str = "pii",
    level: str = "public",
    sender: str = "summarizer",
    type: str = "report.public_summary",
    roles: tuple[str, ...] = ("compliance",),
) -> CheckInput:
    cause = Message(type="report.make", sender="web", classification=cause_level)
    out = Message(
        type=type,
        sender=sender,
        classification=level,
        actor=Actor(subject="c", roles=roles),
        causation_id=cause.id,
    )
    return CheckInput(out, None, None, datetime.now(UTC), MessageScan(out), cause)


def test_a_matching_rule_permits_the_lowering(load_spec: LoadText) -> None:
    assert load_spec(SPEC).evaluate(lowering()).allowed


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"sender": "other-agent"}, "sender"),
        ({"type": "report.full"}, "type"),
        ({"cause_level": "secret"}, "cause above 'from'"),
        ({"roles": ("advisor",)}, "actor lacks the role"),
    ],
)
def test_anything_else_is_not_permitted(
    load_spec: LoadText, changes: dict[str, object], why: str
) -> None:
    evaluation = load_spec(SPEC).evaluate(lowering(**changes))  # type: ignore[arg-type]
    assert not evaluation.allowed, why
    assert evaluation.deciding is not None
    assert evaluation.deciding.code == "declassify_not_permitted"
    assert evaluation.deciding.evidence == {
        "from": changes.get("cause_level", "pii"),
        "to": "public",
    }


def test_no_lowering_is_always_allowed(load_spec: LoadText) -> None:
    assert load_spec(SPEC).evaluate(lowering(level="pii")).allowed
    assert load_spec(SPEC).evaluate(lowering(level="secret")).allowed


def test_to_must_be_below_from(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace("to: public", "to: pii"))
    [issue] = info.value.issues
    assert issue.code == "invalid_value"
    assert issue.line == 16  # the "to:" line


def test_undeclared_role_is_reported_at_the_role(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace("require_roles: [compliance]", "require_roles: [auditor]"))
    [issue] = info.value.issues
    assert (issue.code, issue.line) == ("undeclared_role", 17)  # the role itself
