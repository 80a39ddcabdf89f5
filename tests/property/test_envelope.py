"""Property tests: canonical form and envelope parsing."""

from __future__ import annotations

import contextlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from govbus.envelope import Classification, Message
from govbus.errors import EnvelopeError

json_leaf = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=10), json_value, max_size=6)
types = st.from_regex(r"[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True)

messages = st.builds(
    Message,
    type=types,
    sender=st.text(min_size=1, max_size=12),
    payload=payloads,
    classification=st.sampled_from(list(Classification)),
    metadata=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(messages)
def test_canonical_form_survives_a_wire_round_trip(m: Message) -> None:
    """parse(wire(m)) has the same canonical bytes and digest as m."""
    again = Message.from_json(m.to_json())
    assert again.canonical() == m.canonical()
    assert again.digest() == m.digest()


@settings(max_examples=200, deadline=None)
@given(messages)
def test_canonical_form_is_sorted_compact_json(m: Message) -> None:
    canon = m.canonical()
    decoded = orjson.loads(canon)
    assert orjson.dumps(decoded, option=orjson.OPT_SORT_KEYS) == canon
    assert "signature" not in decoded and "attempt" not in decoded


@settings(max_examples=200, deadline=None)
@given(messages, st.dictionaries(st.text(max_size=6), json_value, min_size=1, max_size=3))
def test_canonical_form_is_independent_of_payload_key_order(m: Message, extra: dict) -> None:  # type: ignore[type-arg]
    merged = {**m.payload, **extra}
    reordered = dict(reversed(list(merged.items())))
    a = m.model_copy(update={"payload": merged})
    b = m.model_copy(update={"payload": reordered})
    assert a.canonical() == b.canonical()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_parser_only_ever_raises_envelope_error(raw: bytes) -> None:
    """Arbitrary bytes either parse or raise EnvelopeError: nothing else escapes."""
    with contextlib.suppress(EnvelopeError):
        Message.from_json(raw)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "from",
                "to",
                "classification",
                "payload",
                "metadata",
                "attempt",
                "actor",
                "deadline",
                "id",
            ]
        ),
        json_value,
        max_size=8,
    )
)
def test_parser_rejects_bad_field_values_with_envelope_error(raw: dict) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(EnvelopeError):
        Message.from_dict(raw)
