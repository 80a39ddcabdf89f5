"""The ``required_metadata`` kind: listed metadata keys must be present (and non-blank)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.policy import CheckInput, Policy, PolicyError

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]


def required(load_spec: LoadText, params: str) -> Policy:
    return load_spec(f"""
        spec:
          checks:
            - id: meta
              use: required_metadata
              {params}
        """)


def test_all_keys_present_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = required(load_spec, "keys: [traceparent, purpose]")
    inp = make_input(metadata={"traceparent": "00-x", "purpose": "advice", "extra": ""})
    assert policy.evaluate(inp).allowed


def test_missing_keys_are_denied_and_listed(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = required(load_spec, "keys: [traceparent, purpose, consent]")
    evaluation = policy.evaluate(make_input(metadata={"purpose": "advice"}))
    assert not evaluation.allowed
    result = evaluation.results[0]
    assert (result.outcome, result.code) == ("deny", "missing_metadata")
    assert result.evidence == {"missing": ["traceparent", "consent"]}
    assert "traceparent, consent" in (result.reason or "")


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_values_count_as_missing_by_default(
    load_spec: LoadText, make_input: MakeInput, blank: str
) -> None:
    policy = required(load_spec, "keys: [purpose]")
    evaluation = policy.evaluate(make_input(metadata={"purpose": blank}))
    assert evaluation.results[0].evidence == {"missing": ["purpose"]}


def test_blank_values_are_accepted_when_non_empty_is_false(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = required(load_spec, "keys: [purpose]\n              non_empty: false")
    assert policy.evaluate(make_input(metadata={"purpose": ""})).allowed
    assert not policy.evaluate(make_input(metadata={})).allowed


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("keys: []", "at least 1 item"),
        ("keys: traceparent", "valid list"),
        ("keys: [1]", "valid string"),
        ('keys: [""]', "at least 1 character"),
        ("keys: [a]\n              non_empty: maybe", "valid boolean"),
        ("{}", "missing required parameter 'keys'"),
    ],
)
def test_bad_parameters_are_reported(load_spec: LoadText, params: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        required(load_spec, params if params != "{}" else "")
    [issue] = info.value.issues
    assert fragment in issue.message
    assert issue.code in {"invalid_param", "missing_param"}
