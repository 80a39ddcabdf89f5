"""The ``explainability`` kind: outputs of high-risk agents must carry a rationale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]


def explain_policy(load_spec: LoadText, extra: str = "") -> Policy:
    lines = "".join(f"\n              {line}" for line in extra.splitlines() if line)
    return load_spec(f"""
        spec:
          checks:
            - id: explained
              use: explainability{lines}
        """)


def from_agent(make_input: MakeInput, risk: str, payload: dict[str, Any]) -> CheckInput:
    sender = AgentCard(name="advisor", handles="portfolio.advise", risk=risk)
    return make_input(type="portfolio.advice", sender="advisor", payload=payload)._replace(
        sender=sender
    )


@pytest.mark.parametrize("risk", ["high", "critical"])
def test_a_high_risk_output_with_a_rationale_is_allowed(
    load_spec: LoadText, make_input: MakeInput, risk: str
) -> None:
    inp = from_agent(make_input, risk, {"advice": "hold", "rationale": "fees outweigh gains"})
    assert explain_policy(load_spec).evaluate(inp).allowed


@pytest.mark.parametrize(
    ("payload", "problem", "length"),
    [
        ({"advice": "sell"}, "missing", 0),
        ({"rationale": None}, "missing", 0),
        ({"rationale": ""}, "too_short", 0),
        ({"rationale": " \n\t"}, "too_short", 0),
        ({"rationale": ["because"]}, "not_a_string", 0),
    ],
)
def test_a_high_risk_output_without_a_rationale_is_denied(
    load_spec: LoadText,
    make_input: MakeInput,
    payload: dict[str, Any],
    problem: str,
    length: int,
) -> None:
    result = explain_policy(load_spec).evaluate(from_agent(make_input, "high", payload)).results[0]
    assert (result.outcome, result.code) == ("deny", "missing_rationale")
    assert result.evidence == {
        "field": "rationale",
        "problem": problem,
        "length": length,
        "min_length": 1,
        "sender_risk": "high",
    }


@pytest.mark.parametrize("risk", ["low", "medium"])
def test_lower_risk_agents_need_no_rationale(
    load_spec: LoadText, make_input: MakeInput, risk: str
) -> None:
    inp = from_agent(make_input, risk, {"advice": "sell"})
    assert explain_policy(load_spec).evaluate(inp).allowed


def test_messages_from_clients_need_no_rationale(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    assert explain_policy(load_spec).evaluate(make_input(payload={"advice": "sell"})).allowed


def test_min_risk_lowers_the_bar(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = from_agent(make_input, "medium", {"advice": "sell"})
    assert explain_policy(load_spec, "min_risk: medium").evaluate(inp).results[0].code == (
        "missing_rationale"
    )


def test_a_dotted_field_and_min_length_are_honoured_without_echoing_the_text(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = explain_policy(load_spec, "field: advice.rationale\nmin_length: 12")
    good = from_agent(make_input, "high", {"advice": {"rationale": "diversify holdings"}})
    assert policy.evaluate(good).allowed
    short = from_agent(make_input, "high", {"advice": {"rationale": "  trust me  "}})
    result = policy.evaluate(short).results[0]
    assert (result.code, result.evidence["problem"], result.evidence["length"]) == (
        "missing_rationale",
        "too_short",
        8,
    )
    assert "trust me" not in repr(result)
    flat = from_agent(make_input, "high", {"rationale": "diversify holdings"})
    assert policy.evaluate(flat).results[0].evidence["problem"] == "missing"


def test_a_digit_segment_indexes_a_list(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = explain_policy(load_spec, "field: steps.1.why")
    inp = from_agent(make_input, "high", {"steps": [{"why": ""}, {"why": "rates fell"}]})
    assert policy.evaluate(inp).allowed
    out_of_range = from_agent(make_input, "high", {"steps": [{"why": "rates fell"}]})
    assert policy.evaluate(out_of_range).results[0].evidence["problem"] == "missing"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("min_risk: extreme", "min_risk"),
        ("field: advice..rationale", "field"),
        ("field: ''", "field"),
        ("min_length: 0", "min_length"),
        ("min_length: many", "min_length"),
        ("fields: [rationale]", "unknown parameter 'fields'"),
    ],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, bad: str, fragment: str
) -> None:
    # A valid parameter first, so the reported line is the bad one's, not the check's.
    with pytest.raises(PolicyError) as info:
        explain_policy(load_spec, f"mode: enforce\n{bad}")
    [issue] = info.value.issues
    assert issue.line == 12
    assert issue.code in {"invalid_param", "unknown_param"}
    assert fragment in issue.message


def test_explainability_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["explainability"]
    assert set(kind.params.model_fields) == {"min_risk", "field", "min_length"}
    assert kind.summary.endswith(".")
