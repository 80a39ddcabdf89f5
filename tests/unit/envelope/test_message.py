"""Envelope: wire format, validation errors, derivation rules, classification order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from govbus.envelope import Actor, Classification, Message, TypePattern, new_id
from govbus.errors import EnvelopeError


def make(**kw: object) -> Message:
    fields: dict[str, object] = {"type": "portfolio.analyze", "sender": "web"}
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def test_wire_format_uses_from_and_to_keys() -> None:
    """The JSON form says `from`, not `sender`, and carries the spec version."""
    wire = orjson.loads(make(to="analyzer").to_json())
    assert wire["from"] == "web"
    assert wire["to"] == "analyzer"
    assert wire["spec"] == "govbus/1"
    assert "sender" not in wire


def test_round_trip_through_wire_format() -> None:
    """Parsing the wire form gives back an equal message."""
    m = make(payload={"a": [1, {"b": None}]}, actor=Actor(subject="u", roles=("advisor",)))
    assert Message.from_json(m.to_json()) == m


def test_missing_classification_means_internal() -> None:
    assert Message.from_dict({"type": "a.b", "from": "x"}).classification is Classification.INTERNAL


def test_classification_is_ordered() -> None:
    """public < internal < pii < secret, and max() picks the highest."""
    levels = [Classification.SECRET, Classification.PUBLIC, Classification.PII]
    assert sorted(levels) == [Classification.PUBLIC, Classification.PII, Classification.SECRET]
    assert max(levels) is Classification.SECRET
    assert Classification.INTERNAL < Classification.PII


def test_malformed_envelope_names_every_bad_field() -> None:
    """A bad envelope raises EnvelopeError listing each field and why."""
    with pytest.raises(EnvelopeError) as info:
        Message.from_dict({"type": "Not A Type", "from": "", "classification": "top-secret"})
    text = str(info.value)
    assert info.value.code == "envelope_invalid"
    assert "type:" in text and "from:" in text and "classification:" in text


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'"text"', b""])
def test_non_object_or_invalid_json_is_envelope_error(raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Message.from_json(raw)


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(EnvelopeError, match="smuggled"):
        Message.from_dict({"type": "a.b", "from": "x", "smuggled": 1})


def test_naive_timestamp_is_rejected_and_offsets_become_utc() -> None:
    """Timestamps must carry a zone; any zone is normalised to UTC."""
    with pytest.raises(EnvelopeError, match="timezone"):
        Message.from_dict({"type": "a.b", "from": "x", "created_at": "2026-01-01T10:00:00"})
    ist = timezone(timedelta(hours=5, minutes=30))
    m = make(created_at=datetime(2026, 1, 1, 15, 30, tzinfo=ist))
    assert m.created_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert m.created_at.tzinfo is UTC


def test_message_is_frozen() -> None:
    m = make()
    with pytest.raises(Exception, match="frozen"):
        m.type = "other.type"  # type: ignore[misc]


def test_canonical_form_sorts_keys_and_omits_signature_and_attempt() -> None:
    """Canonical bytes are compact, sorted, and stable across signature and redelivery."""
    m = make(payload={"b": 1, "a": 2})
    canon = m.canonical()
    assert b" " not in canon
    assert canon.index(b'"a"') < canon.index(b'"b"')
    assert b"signature" not in canon and b"attempt" not in canon
    redelivered = m.model_copy(update={"attempt": 3, "signature": "x"})
    assert redelivered.canonical() == canon
    assert redelivered.digest() == m.digest()


def test_digest_changes_with_any_field() -> None:
    m = make()
    assert m.digest() != m.model_copy(update={"classification": Classification.PII}).digest()
    assert m.digest() != m.with_metadata(purpose="advice").digest()


def test_reply_links_conversation_and_addresses_sender() -> None:
    """A reply goes to the sender, with causation and correlation set."""
    m = make(actor=Actor(subject="u"), metadata={"traceparent": "t", "reply_to": "_inbox.x"})
    r = m.reply("portfolio.analysis", {"ok": True}, sender="analyzer")
    assert (r.to, r.sender) == ("web", "analyzer")
    assert r.causation_id == m.id
    assert r.correlation_id == m.id
    assert r.actor == m.actor
    assert r.metadata == {"traceparent": "t"}  # reply_to is transport state, not inherited


def test_caused_message_inherits_classification_unless_asked() -> None:
    """By default a caused message carries its cause's level; an explicit level is kept as a
    request (the orchestrator enforces that it only falls under a declassify rule)."""
    m = make(classification="pii")
    assert m.caused("x.y").classification is Classification.PII
    assert m.caused("x.y", classification="secret").classification is Classification.SECRET
    assert m.caused("x.y", classification="public").classification is Classification.PUBLIC


def test_correlation_id_is_kept_across_hops() -> None:
    first = make()
    second = first.caused("b.c", sender="a")
    third = second.caused("c.d", sender="b")
    assert third.correlation_id == first.id
    assert third.causation_id == second.id


def test_evolve_validates_changes() -> None:
    m = make()
    assert m.evolve(classification="secret").classification is Classification.SECRET
    with pytest.raises(Exception, match="classification"):
        m.evolve(classification="nope")


def test_with_metadata_requires_strings() -> None:
    with pytest.raises(TypeError, match="purpose"):
        make().with_metadata(purpose=3)  # type: ignore[arg-type]


def test_ids_are_unique_and_time_sortable() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i[14] == "7" for i in ids)  # UUID version 7


def test_remaining_counts_down_to_deadline() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    m = make(deadline=now + timedelta(seconds=2))
    assert m.remaining(now) == 2.0
    assert make().remaining(now) is None


def test_type_pattern_globs() -> None:
    p = TypePattern(["portfolio.*", "tool.search"])
    assert p.matches("portfolio.analyze")
    assert p.matches("portfolio.analyze.result")
    assert p.matches("tool.search")
    assert not p.matches("tool.searcher")
    assert not p.matches("portfolios.x")
    with pytest.raises(ValueError, match="invalid type pattern"):
        TypePattern(["Bad Glob!"])


def test_header_fields_are_bounded() -> None:
    """Only payload and metadata may grow; the length check measures exactly those."""
    with pytest.raises(EnvelopeError, match="roles"):
        Message.from_dict(
            {"type": "a.b", "from": "x", "actor": {"subject": "u", "roles": ["r"] * 65}}
        )
    with pytest.raises(EnvelopeError, match="correlation_id"):
        Message.from_dict({"type": "a.b", "from": "x", "correlation_id": "c" * 129})
    with pytest.raises(EnvelopeError, match="signature"):
        Message.from_dict({"type": "a.b", "from": "x", "signature": "s" * 1025})
