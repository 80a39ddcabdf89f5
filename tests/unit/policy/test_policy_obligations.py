"""Applying obligations: redaction spans and raised classification, on a copy."""

from __future__ import annotations

import pytest

from govbus.envelope import Classification, Message
from govbus.policy import Redaction
from govbus.policy.obligations import apply_obligations, redaction_problem


def message(**payload: object) -> Message:
    return Message(type="a.b", sender="web", payload=payload, metadata={"k": "value"})


def test_a_span_bridging_two_earlier_spans_merges_all_three_under_the_first_label() -> None:
    original = message(text="0123456789")
    redactions = [
        Redaction(("payload", "text"), 0, 2, "first"),
        Redaction(("payload", "text"), 4, 6, "second"),
        Redaction(("payload", "text"), 1, 5, "bridge"),
    ]
    out = apply_obligations(original, redactions, None)
    assert out.payload == {"text": "[REDACTED:first]6789"}


def test_adjacent_spans_stay_separate() -> None:
    redactions = [
        Redaction(("payload", "text"), 0, 2, "a"),
        Redaction(("payload", "text"), 2, 4, "b"),
    ]
    out = apply_obligations(message(text="abcdef"), redactions, None)
    assert out.payload == {"text": "[REDACTED:a][REDACTED:b]ef"}


def test_tuples_in_the_payload_are_copied_not_mutated() -> None:
    original = Message.model_construct(
        type="a.b", sender="web", payload={"rows": ("keep", "secret")}, metadata={}
    )
    out = apply_obligations(original, [Redaction(("payload", "rows", 1), 0, 6, "s")], None)
    assert out.payload == {"rows": ("keep", "[REDACTED:s]")}
    assert original.payload == {"rows": ("keep", "secret")}


def test_nothing_to_do_returns_the_same_message() -> None:
    original = message(text="x")
    assert apply_obligations(original, [], None) is original
    assert apply_obligations(original, [], Classification.PUBLIC) is original


def test_classification_is_raised_not_lowered() -> None:
    assert apply_obligations(message(), [], Classification.SECRET).classification == "secret"
    pii = Message(type="a.b", sender="web", classification="pii")
    assert apply_obligations(pii, [], Classification.INTERNAL).classification == "pii"


@pytest.mark.parametrize(
    ("path", "start", "end", "problem"),
    [
        (("payload", "text"), 0, 3, None),
        (("metadata", "k"), 1, 5, None),
        (("payload",), 0, 1, "must start with"),
        (("actor", "subject"), 0, 1, "must start with"),
        (("metadata", "k", 0), 0, 1, "flat strings"),
        (("payload", "nope"), 0, 1, "does not exist"),
        (("payload", "list", 5), 0, 1, "does not exist"),
        (("payload", "list", True), 0, 1, "does not exist"),
        (("payload", "number"), 0, 1, "not point at a string"),
        (("payload", "text"), 2, 2, "outside the string"),
        (("payload", "text"), -1, 2, "outside the string"),
        (("payload", "text"), 0, 4, "outside the string"),
    ],
)
def test_redaction_problem(
    path: tuple[str | int, ...], start: int, end: int, problem: str | None
) -> None:
    original = message(text="abc", list=["x"], number=5)
    found = redaction_problem(original, Redaction(path, start, end, "l"))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
