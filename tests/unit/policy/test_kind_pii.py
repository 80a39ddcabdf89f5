"""The ``pii`` kind from YAML: allow, deny, redact, escalate, ``allow_at`` and bad parameters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.envelope import Classification
from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

CARD = "4111 1111 1111 1111"
EMAIL = "ana.silva@example.com"


def pii_policy(load_spec: LoadText, extra: str = "") -> Policy:
    lines = "".join(f"\n              {line}" for line in extra.splitlines() if line)
    return load_spec(f"""
        spec:
          checks:
            - id: no-pii
              use: pii{lines}
        """)


def test_a_message_without_pii_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(payload={"text": "Rebalance towards bonds, 60/40, by 2026-12-01."})
    evaluation = pii_policy(load_spec).evaluate(inp)
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "allow"


def test_pii_is_denied_with_evidence_that_holds_no_value(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(
        payload={"customer": {"notes": [f"card {CARD}", "ok"]}, "contact": EMAIL},
        metadata={"reply_to": EMAIL},
    )
    evaluation = pii_policy(load_spec).evaluate(inp)
    assert not evaluation.allowed
    result = evaluation.results[0]
    assert (result.outcome, result.code) == ("deny", "pii_detected")
    assert result.evidence["entities"] == {"credit_card": 1, "email": 2}
    assert {"path": "payload.customer.notes.0", "entity": "credit_card", "start": 5, "end": 24} in (
        result.evidence["locations"]
    )
    assert {"path": "metadata.reply_to", "entity": "email", "start": 0, "end": len(EMAIL)} in (
        result.evidence["locations"]
    )
    for value in (CARD, CARD.replace(" ", ""), EMAIL):
        assert value not in repr(evaluation.results)
        assert value not in repr(result.as_record())


def test_redact_removes_pii_from_the_dispatched_copy(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(payload={"items": [{"note": f"pay with {CARD} or mail {EMAIL}"}]})
    evaluation = pii_policy(load_spec, "action: redact").evaluate(inp)
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "redact"
    assert evaluation.message.payload == {
        "items": [{"note": "pay with [REDACTED:credit_card] or mail [REDACTED:email]"}]
    }
    assert inp.message.payload["items"][0]["note"].startswith(f"pay with {CARD}")


def test_redact_only_the_listed_entities(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(payload={"text": f"{CARD} / {EMAIL}"})
    evaluation = pii_policy(load_spec, "action: redact\nentities: [credit_card]").evaluate(inp)
    assert evaluation.message.payload == {"text": f"[REDACTED:credit_card] / {EMAIL}"}


def test_escalate_raises_the_classification_to_pii(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(payload={"text": f"reach me at {EMAIL}"}, classification="internal")
    evaluation = pii_policy(load_spec, "action: escalate").evaluate(inp)
    assert evaluation.allowed
    result = evaluation.results[0]
    assert (result.outcome, result.code) == ("escalate", "pii_detected")
    assert evaluation.message.classification is Classification.PII
    assert evaluation.message.payload == inp.message.payload


@pytest.mark.parametrize(
    ("level", "allowed"), [("pii", True), ("secret", True), ("internal", False)]
)
def test_allow_at_lets_pii_through_in_messages_classified_that_high(
    load_spec: LoadText, make_input: MakeInput, level: str, allowed: bool
) -> None:
    inp = make_input(payload={"text": f"card {CARD}"}, classification=level)
    evaluation = pii_policy(load_spec, "allow_at: pii").evaluate(inp)
    assert evaluation.allowed is allowed


def test_allow_at_skips_the_scan(load_spec: LoadText, make_input: MakeInput) -> None:
    """Above ``allow_at`` the strings are never read."""

    class NoScan:
        @property
        def strings(self) -> object:
            raise AssertionError("scanned")

    inp = make_input(payload={"text": EMAIL}, classification="pii")
    fn = pii_policy(load_spec, "allow_at: pii").checks[0].fn
    assert fn(inp._replace(scan=NoScan())).kind == "allow"  # type: ignore[arg-type]


def test_only_the_listed_entities_are_looked_for(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = pii_policy(load_spec, "entities: [iban, us_ssn]")
    assert policy.evaluate(make_input(payload={"text": EMAIL})).allowed
    assert not policy.evaluate(make_input(payload={"text": "SSN 123-45-6789"})).allowed


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("entities: [email, passport]", "entities.1"),
        ("entities: []", "entities"),
        ("action: block", "action"),
        ("allow_at: top_secret", "allow_at"),
        ("scan: payload_only", "scan"),
        ("entity: [email]", "entity"),
    ],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, bad: str, needle: str
) -> None:
    # A valid parameter first, so the reported line is the bad one's, not the check's.
    with pytest.raises(PolicyError) as info:
        pii_policy(load_spec, f"mode: enforce\n{bad}")
    [issue] = info.value.issues
    assert issue.line == 12
    assert needle in issue.message


def test_pii_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["pii"]
    assert set(kind.params.model_fields) == {"entities", "allow_at", "action", "scan"}
    assert kind.summary.endswith(".")
