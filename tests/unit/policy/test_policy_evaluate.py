"""The composite evaluator: SPEC section 4 semantics, one behaviour per test."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from govbus.envelope import Actor, Classification, Message
from govbus.policy import (
    ALLOW,
    CheckInput,
    CheckParams,
    CompiledCheck,
    Decision,
    Deny,
    Escalate,
    Policy,
    Redact,
    Redaction,
    When,
)
from govbus.registry.card import AgentCard

Scripts = dict[str, Callable[[CheckInput], Decision]]
MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]


def deny(code: str) -> Callable[[CheckInput], Decision]:
    return lambda inp: Deny(code, f"denied: {code}", {"n": 1})


def redact(
    path: tuple[str | int, ...], *spans: tuple[int, int], label: str = "x"
) -> Callable[[CheckInput], Decision]:
    redactions = tuple(Redaction(path, s, e, label) for s, e in spans)
    return lambda inp: Redact(redactions, "redacted", "spans redacted")


def escalate(to: Classification) -> Callable[[CheckInput], Decision]:
    return lambda inp: Escalate(to, "escalated", "raised classification")


def test_all_checks_run_even_after_a_deny(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    calls: list[str] = []

    def record(name: str, decision: Decision) -> Callable[[CheckInput], Decision]:
        def check(inp: CheckInput) -> Decision:
            calls.append(name)
            return decision

        return check

    scripts.update(a=record("a", Deny("first", "no")), b=record("b", ALLOW), c=record("c", ALLOW))
    policy = load_spec("""
        spec:
          checks:
            - {id: a, use: script, name: a}
            - {id: b, use: script, name: b}
            - {id: c, use: script, name: c}
        """)
    evaluation = policy.evaluate(make_input())
    assert calls == ["a", "b", "c"]
    assert [(r.check_id, r.outcome) for r in evaluation.results] == [
        ("a", "deny"),
        ("b", "allow"),
        ("c", "allow"),
    ]


def test_deny_wins_and_the_first_enforcing_deny_decides(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(ok=lambda inp: ALLOW, d1=deny("one"), d2=deny("two"))
    policy = load_spec("""
        spec:
          checks:
            - {id: ok, use: script, name: ok}
            - {id: watch, use: script, name: d1, mode: monitor}
            - {id: first, use: script, name: d1}
            - {id: second, use: script, name: d2}
        """)
    inp = make_input()
    evaluation = policy.evaluate(inp)
    assert not evaluation.allowed
    assert evaluation.deciding is not None
    assert (evaluation.deciding.check_id, evaluation.deciding.code) == ("first", "one")
    assert evaluation.deciding.reason == "denied: one"
    assert evaluation.deciding.evidence == {"n": 1}
    assert [r.outcome for r in evaluation.results] == ["allow", "would_deny", "deny", "deny"]
    assert evaluation.message is inp.message
    assert evaluation.obligations == ()


def test_everything_allowing_is_allowed_with_the_same_message(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["ok"] = lambda inp: ALLOW
    policy = load_spec("""
        spec:
          checks: [{id: ok, use: script, name: ok}]
        """)
    inp = make_input()
    evaluation = policy.evaluate(inp)
    assert evaluation.allowed
    assert evaluation.message is inp.message
    assert evaluation.deciding is None
    assert evaluation.results[0].outcome == "allow"


def test_a_policy_without_checks_allows(make_input: MakeInput) -> None:
    policy = Policy("p", "1", None, None, "enforce", frozenset(), (), "0" * 64)
    message = Message(type="a.b", sender="web")
    evaluation = policy.evaluate(make_input(message))
    assert evaluation.allowed
    assert evaluation.message is message
    assert evaluation.results == ()


def test_policy_monitor_mode_records_would_deny_and_allows(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["deny"] = deny("nope")
    policy = load_spec("""
        spec:
          mode: monitor
          checks: [{id: denier, use: script, name: deny}]
        """)
    evaluation = policy.evaluate(make_input())
    assert evaluation.allowed
    assert evaluation.deciding is None
    assert [(r.check_id, r.outcome, r.code) for r in evaluation.would_deny] == [
        ("denier", "would_deny", "nope")
    ]


def test_check_monitor_mode_in_an_enforcing_policy_does_not_block(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(deny=deny("nope"), ok=lambda inp: ALLOW)
    policy = load_spec("""
        spec:
          checks:
            - {id: trial, use: script, name: deny, mode: monitor}
            - {id: ok, use: script, name: ok}
        """)
    evaluation = policy.evaluate(make_input())
    assert evaluation.allowed
    assert [r.outcome for r in evaluation.results] == ["would_deny", "allow"]


def test_check_enforce_override_in_a_monitor_policy_blocks(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["deny"] = deny("nope")
    policy = load_spec("""
        spec:
          mode: monitor
          checks:
            - {id: hard, use: script, name: deny, mode: enforce}
            - {id: soft, use: script, name: deny}
        """)
    evaluation = policy.evaluate(make_input())
    assert not evaluation.allowed
    assert [r.outcome for r in evaluation.results] == ["deny", "would_deny"]


def test_a_raising_check_is_a_check_error_deny_and_the_rest_still_run(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    def boom(inp: CheckInput) -> Decision:
        raise RuntimeError("detector crashed")

    scripts.update(boom=boom, ok=lambda inp: ALLOW)
    policy = load_spec("""
        spec:
          checks:
            - {id: boom, use: script, name: boom}
            - {id: ok, use: script, name: ok}
        """)
    evaluation = policy.evaluate(make_input())
    assert not evaluation.allowed
    assert evaluation.deciding is not None
    assert evaluation.deciding.check_id == "boom"
    assert evaluation.deciding.code == "check_error"
    assert evaluation.deciding.reason == "RuntimeError: detector crashed"
    assert evaluation.results[1].outcome == "allow"


def test_a_raising_monitor_check_is_a_would_deny(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    def boom(inp: CheckInput) -> Decision:
        _ = 1 // len(inp.message.payload)  # the payload is empty
        return ALLOW

    scripts["boom"] = boom
    policy = load_spec("""
        spec:
          checks: [{id: boom, use: script, name: boom, mode: monitor}]
        """)
    evaluation = policy.evaluate(make_input())
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "would_deny"
    assert evaluation.results[0].reason == "ZeroDivisionError: integer division or modulo by zero"


@pytest.mark.parametrize("returned", [None, "allow", True, object()])
def test_a_check_returning_a_non_decision_fails_closed(
    returned: object, scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["bad"] = lambda inp: returned  # type: ignore[assignment,return-value]
    policy = load_spec("""
        spec:
          checks: [{id: bad, use: script, name: bad}]
        """)
    evaluation = policy.evaluate(make_input())
    assert not evaluation.allowed
    assert evaluation.results[0].code == "check_error"
    assert "expected a Decision" in (evaluation.results[0].reason or "")


def test_durations_are_measured_for_run_checks_and_zero_for_skipped(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    def slow(inp: CheckInput) -> Decision:
        time.sleep(0.002)
        return ALLOW

    scripts["slow"] = slow
    policy = load_spec("""
        spec:
          checks:
            - {id: slow, use: script, name: slow}
            - {id: never, use: script, name: slow, when: {types: [nothing.here]}}
        """)
    evaluation = policy.evaluate(make_input())
    assert evaluation.results[0].duration_ns >= 2_000_000
    assert evaluation.results[1].duration_ns == 0


CARD = AgentCard(name="advisor", handles="portfolio.*")


@pytest.mark.parametrize(
    ("when", "fields", "recipient", "applies"),
    [
        ({"types": ["portfolio.*"]}, {"type": "portfolio.analyze"}, None, True),
        ({"types": ["portfolio.*"]}, {"type": "chat.message"}, None, False),
        ({"types": ["a.b", "chat.?essage"]}, {"type": "chat.message"}, None, True),
        ({"senders": ["web", "crm-*"]}, {"sender": "crm-eu"}, None, True),
        ({"senders": ["web"]}, {"sender": "mobile"}, None, False),
        ({"recipients": ["advisor"]}, {}, CARD, True),
        ({"recipients": ["adv?sor"]}, {}, CARD, True),
        ({"recipients": ["other"]}, {}, CARD, False),
        ({"recipients": ["*"]}, {}, None, False),  # a client address is not a recipient agent
        ({"classification_at_least": "pii"}, {"classification": "pii"}, None, True),
        ({"classification_at_least": "pii"}, {"classification": "secret"}, None, True),
        ({"classification_at_least": "pii"}, {"classification": "internal"}, None, False),
        ({"types": ["portfolio.*"], "senders": ["web"]}, {"sender": "mobile"}, None, False),
        ({}, {}, None, True),
    ],
)
def test_when_clauses(
    when: dict[str, object],
    fields: dict[str, object],
    recipient: AgentCard | None,
    applies: bool,
    make_input: MakeInput,
) -> None:
    matcher = When.from_spec(when)
    assert matcher.applies(make_input(recipient=recipient, **fields)) is applies
    assert matcher.always is (not when)


def test_a_check_whose_when_does_not_apply_is_skipped_and_not_called(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    called: list[bool] = []
    scripts["deny"] = lambda inp: called.append(True) or Deny("x", "y")  # type: ignore[func-returns-value]
    policy = load_spec("""
        spec:
          checks:
            - id: pii-only
              use: script
              name: deny
              when: {classification_at_least: pii}
        """)
    evaluation = policy.evaluate(make_input(classification="internal"))
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "skipped"
    assert called == []
    assert not policy.evaluate(make_input(classification="secret")).allowed


def test_redactions_apply_right_to_left_within_a_string(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    # Both offsets refer to the original text; left-to-right would shift the second span.
    scripts["r"] = redact(("payload", "note"), (0, 4), (11, 15), label="pii")
    policy = load_spec("""
        spec:
          checks: [{id: pii-in-clear, use: script, name: r}]
        """)
    inp = make_input(payload={"note": "John, call 5551 now", "other": "kept"})
    evaluation = policy.evaluate(inp)
    assert evaluation.allowed
    assert evaluation.message.payload == {
        "note": "[REDACTED:pii], call [REDACTED:pii] now",
        "other": "kept",
    }
    assert evaluation.obligations == ("redact:pii-in-clear",)
    assert evaluation.results[0].outcome == "redact"
    assert inp.message.payload["note"] == "John, call 5551 now"  # the original is untouched


def test_redactions_from_several_checks_apply_in_order_on_original_offsets(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(
        first=redact(("payload", "items", 1, "text"), (0, 5), label="name"),
        second=redact(("payload", "items", 1, "text"), (3, 9), (12, 15), label="phone"),
        meta=redact(("metadata", "note"), (4, 8), label="secret"),
    )
    policy = load_spec("""
        spec:
          checks:
            - {id: first, use: script, name: first}
            - {id: second, use: script, name: second}
            - {id: meta, use: script, name: meta}
        """)
    inp = make_input(
        payload={"items": ["untouched", {"text": "Alice Bob x 555 end"}]},
        metadata={"note": "pin 1234", "traceparent": "t"},
    )
    evaluation = policy.evaluate(inp)
    # (0, 5) and (3, 9) overlap: merged into one span labelled by the earlier check.
    assert evaluation.message.payload == {
        "items": ["untouched", {"text": "[REDACTED:name] x [REDACTED:phone] end"}]
    }
    assert evaluation.message.metadata == {"note": "pin [REDACTED:secret]", "traceparent": "t"}
    assert evaluation.obligations == ("redact:first", "redact:second", "redact:meta")
    assert inp.message.metadata["note"] == "pin 1234"


def test_a_redaction_that_cannot_be_applied_fails_closed(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(
        path=redact(("payload", "missing"), (0, 1)),
        span=redact(("payload", "note"), (2, 99)),
        root=redact(("actor",), (0, 1)),
    )
    policy = load_spec("""
        spec:
          checks:
            - {id: path, use: script, name: path}
            - {id: span, use: script, name: span}
            - {id: root, use: script, name: root}
        """)
    evaluation = policy.evaluate(make_input(payload={"note": "abc"}))
    assert not evaluation.allowed
    assert [r.code for r in evaluation.results] == ["check_error"] * 3
    assert "does not exist" in (evaluation.results[0].reason or "")
    assert "outside the string" in (evaluation.results[1].reason or "")
    assert "must start with 'payload' or 'metadata'" in (evaluation.results[2].reason or "")


def test_escalation_raises_classification_only_upwards(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(pii=escalate(Classification.PII), public=escalate(Classification.PUBLIC))
    policy = load_spec("""
        spec:
          checks:
            - {id: to-pii, use: script, name: pii}
            - {id: to-public, use: script, name: public}
        """)
    raised = policy.evaluate(make_input(classification="internal"))
    assert raised.allowed
    assert raised.message.classification is Classification.PII
    assert raised.obligations == ("escalate:pii", "escalate:public")
    assert [r.outcome for r in raised.results] == ["escalate", "escalate"]
    kept = policy.evaluate(make_input(classification="secret"))
    assert kept.message.classification is Classification.SECRET


def test_obligations_of_monitor_checks_are_recorded_not_applied(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(r=redact(("payload", "note"), (0, 1)), e=escalate(Classification.SECRET))
    policy = load_spec("""
        spec:
          mode: monitor
          checks:
            - {id: r, use: script, name: r}
            - {id: e, use: script, name: e}
        """)
    inp = make_input(payload={"note": "abc"})
    evaluation = policy.evaluate(inp)
    assert evaluation.allowed
    assert [r.outcome for r in evaluation.results] == ["would_redact", "would_escalate"]
    assert evaluation.message is inp.message
    assert evaluation.obligations == ()


def test_a_denied_message_carries_no_obligations(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts.update(r=redact(("payload", "note"), (0, 1)), deny=deny("no"))
    policy = load_spec("""
        spec:
          checks:
            - {id: r, use: script, name: r}
            - {id: denier, use: script, name: deny}
        """)
    inp = make_input(payload={"note": "abc"})
    evaluation = policy.evaluate(inp)
    assert not evaluation.allowed
    assert evaluation.message is inp.message
    assert evaluation.obligations == ()
    assert evaluation.results[0].outcome == "redact"


def test_audit_records_hold_codes_and_evidence_not_payload_text(
    scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["r"] = redact(("payload", "note"), (0, 6), label="email")
    policy = load_spec("""
        spec:
          checks: [{id: r, use: script, name: r}]
        """)
    evaluation = policy.evaluate(make_input(payload={"note": "secret words"}))
    record = evaluation.results[0].as_record()
    assert record == {"id": "r", "kind": "script", "outcome": "redact", "code": "redacted"}
    assert "secret" not in str(record)


def test_compiled_checks_can_be_assembled_without_the_loader(make_input: MakeInput) -> None:
    check = CompiledCheck(
        id="no",
        kind="custom",
        mode="enforce",
        when=When(),
        fn=lambda inp: Deny("custom", "no"),
        params=CheckParams(),
    )
    policy = Policy("p", "1", None, None, "enforce", frozenset(), (check,), "0" * 64)
    evaluation = policy.evaluate(make_input(actor=Actor(subject="u")))
    assert not evaluation.allowed
    assert check.enforcing


@pytest.mark.parametrize(("to", "outcome"), [("pii", "escalate"), ("top-secret", "deny")])
def test_escalation_to_a_plain_string_is_coerced_or_fails_closed(
    to: str, outcome: str, scripts: Scripts, load_spec: LoadText, make_input: MakeInput
) -> None:
    scripts["e"] = lambda inp: Escalate(to, "raise", "raise")  # type: ignore[arg-type]
    policy = load_spec("""
        spec:
          checks: [{id: e, use: script, name: e}]
        """)
    evaluation = policy.evaluate(make_input(classification="internal"))
    assert evaluation.results[0].outcome == outcome
    if outcome == "escalate":
        assert evaluation.message.classification is Classification.PII
    else:
        assert evaluation.results[0].code == "check_error"
