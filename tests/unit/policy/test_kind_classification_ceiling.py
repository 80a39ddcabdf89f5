"""The ``classification_ceiling`` kind: a message's classification against its recipient's
clearance, tightened by an optional ``max``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]


def ceiling_policy(load_spec: LoadText, extra: str = "") -> Policy:
    return load_spec(f"""
        spec:
          checks:
            - id: clearance
              use: classification_ceiling
              {extra}
        """)


def card(clearance: str) -> AgentCard:
    return AgentCard(name="analyzer", handles="portfolio.*", clearance=clearance)


@pytest.mark.parametrize("level", ["public", "internal", "pii"])
def test_a_message_at_or_below_the_recipients_clearance_is_allowed(
    load_spec: LoadText, make_input: MakeInput, level: str
) -> None:
    inp = make_input(classification=level, recipient=card("pii"))
    evaluation = ceiling_policy(load_spec).evaluate(inp)
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "allow"


def test_a_message_above_the_recipients_clearance_is_denied_with_evidence(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(classification="pii", recipient=card("internal"), payload={"x": "secret-ish"})
    result = ceiling_policy(load_spec).evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "above_clearance")
    assert result.evidence == {
        "classification": "pii",
        "ceiling": "internal",
        "source": "clearance",
    }


def test_max_tightens_a_higher_clearance(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = ceiling_policy(load_spec, "max: internal")
    inp = make_input(classification="pii", recipient=card("secret"))
    result = policy.evaluate(inp).results[0]
    assert (result.code, result.evidence["ceiling"], result.evidence["source"]) == (
        "above_clearance",
        "internal",
        "max",
    )
    assert policy.evaluate(make_input(classification="internal", recipient=card("secret"))).allowed


def test_max_never_widens_a_lower_clearance(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(classification="pii", recipient=card("internal"))
    result = ceiling_policy(load_spec, "max: secret").evaluate(inp).results[0]
    assert (result.code, result.evidence["source"]) == ("above_clearance", "clearance")


def test_a_client_address_is_checked_against_max_only(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    secret = make_input(classification="secret")
    assert ceiling_policy(load_spec).evaluate(secret).allowed  # no card, no max: nothing to compare
    result = ceiling_policy(load_spec, "max: pii").evaluate(secret).results[0]
    assert (result.code, result.evidence["ceiling"]) == ("above_clearance", "pii")
    assert ceiling_policy(load_spec, "max: pii").evaluate(make_input(classification="pii")).allowed


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [("max: top_secret", "max"), ("maximum: pii", "unknown parameter 'maximum'")],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, bad: str, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        ceiling_policy(load_spec, bad)
    [issue] = info.value.issues
    assert issue.line == 11
    assert issue.code in {"invalid_param", "unknown_param"}
    assert fragment in issue.message


def test_classification_ceiling_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["classification_ceiling"]
    assert set(kind.params.model_fields) == {"max"}
    assert kind.summary.endswith(".")
