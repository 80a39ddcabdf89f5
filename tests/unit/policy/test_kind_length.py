"""The ``length`` kind: content (default) or whole-envelope size against ``max_bytes``."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from govbus.envelope import Message
from govbus.policy import CHECK_KINDS, CheckInput, Deny, Policy, PolicyError

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]


def length_policy(load_spec: LoadText, max_bytes: object, measure: str = "content") -> Policy:
    return load_spec(f"""
        spec:
          checks:
            - id: size
              use: length
              max_bytes: {max_bytes}
              measure: {measure}
        """)


def content_size(message: Message) -> int:
    return len(orjson.dumps(message.payload)) + len(orjson.dumps(message.metadata))


@pytest.mark.parametrize("measure", ["content", "envelope"])
def test_a_message_at_the_limit_is_allowed(
    load_spec: LoadText, make_input: MakeInput, measure: str
) -> None:
    inp = make_input(payload={"text": "hello"})
    size = content_size(inp.message) if measure == "content" else len(inp.message.to_json())
    evaluation = length_policy(load_spec, size, measure).evaluate(inp)
    assert evaluation.allowed
    assert evaluation.results[0].outcome == "allow"


@pytest.mark.parametrize("measure", ["content", "envelope"])
def test_a_message_over_the_limit_is_denied_with_size_evidence(
    load_spec: LoadText, make_input: MakeInput, measure: str
) -> None:
    inp = make_input(payload={"text": "hello"}, metadata={"purpose": "advice"})
    size = content_size(inp.message) if measure == "content" else len(inp.message.to_json())
    evaluation = length_policy(load_spec, size - 1, measure).evaluate(inp)
    assert not evaluation.allowed
    result = evaluation.results[0]
    assert (result.outcome, result.code) == ("deny", "too_large")
    assert result.evidence == {"size": size, "limit": size - 1, "measure": measure}


def test_content_counts_metadata_too(load_spec: LoadText, make_input: MakeInput) -> None:
    """Stuffing metadata instead of the payload does not get past the limit."""
    inp = make_input(payload={}, metadata={"note": "x" * 500})
    assert not length_policy(load_spec, 400).evaluate(inp).allowed


def test_unknown_measure_is_refused(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError, match="measure"):
        length_policy(load_spec, 100, "bytes")


def test_the_check_reads_the_shared_scan(load_spec: LoadText) -> None:
    class FakeScan:
        content_size = 10_000

    message = Message(type="a.b", sender="web")
    fn = length_policy(load_spec, 100).checks[0].fn
    inp = CheckInput(message, None, None, None, FakeScan())  # type: ignore[arg-type]
    decision = fn(inp)
    assert isinstance(decision, Deny)
    assert decision.evidence["size"] == 10_000


@pytest.mark.parametrize("bad", ["0", "-5", "lots", "1.5", "true", '"100"', "[1]"])
def test_max_bytes_must_be_a_positive_integer(load_spec: LoadText, bad: str) -> None:
    with pytest.raises(PolicyError) as info:
        length_policy(load_spec, bad)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (11, "invalid_param")
    assert "max_bytes" in issue.message


def test_length_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["length"]
    assert "max_bytes" in kind.params.model_fields
    assert kind.summary.endswith(".")
