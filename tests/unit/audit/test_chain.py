"""The hash chain: canonical bytes, hashing, sealing and verification (pure functions)."""

from __future__ import annotations

import dataclasses
import doctest
import enum
import hashlib
import types
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

import govbus.audit.chain
from govbus.audit.base import GENESIS_HASH, AuditEvent, AuditRecord
from govbus.audit.chain import (
    HASHED_FIELDS,
    ChainVerifier,
    chain_row,
    format_ts,
    parse_ts,
    record_fields,
    record_hash,
    row_to_record,
    verify_records,
)

T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)


def event(i: int = 0, **changes: object) -> AuditEvent:
    base = AuditEvent(
        kind="decision",
        ts=T0 + timedelta(seconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        correlation_id="c-1",
        msg_type="advice.request",
        sender="planner",
        recipient="advisor",
        policy_sha256="ab" * 32,
        data={"check": "pii", "i": i},
    )
    return base._replace(**changes)


def chain(n: int, node: str = "host-1") -> list[AuditRecord]:
    records, prev = [], GENESIS_HASH
    for i in range(n):
        row = chain_row(node, i + 1, prev, event(i))
        records.append(row_to_record(row))
        prev = row["hash"]
    return records


def heads_of(records: list[AuditRecord]) -> dict[str, tuple[int, str]]:
    return {r.node: (r.seq, r.hash) for r in records}


# -- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "text"),
    [
        (T0, "2026-11-21T10:00:00.123456Z"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (
            datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T01:04:05.000007Z",
        ),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000000Z"),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000000Z"),
    ],
)
def test_format_ts_is_utc_rfc3339_with_microseconds_and_z(ts: datetime, text: str) -> None:
    assert format_ts(ts) == text


def test_parse_ts_round_trips_to_an_aware_utc_datetime() -> None:
    parsed = parse_ts(format_ts(T0))
    assert parsed == T0
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


# -- hashing --------------------------------------------------------------------------------


def test_record_hash_is_sha256_of_prev_hash_and_sorted_compact_json() -> None:
    fields = {
        "seq": 1,
        "node": "n",
        "data": {"b": 1, "a": "é"},
        "ts": "2026-01-01T00:00:00.000000Z",
    }
    canonical = '{"data":{"a":"é","b":1},"node":"n","seq":1,"ts":"2026-01-01T00:00:00.000000Z"}'
    expected = hashlib.sha256((GENESIS_HASH + canonical).encode()).hexdigest()
    assert record_hash(GENESIS_HASH, fields) == expected


def test_record_hash_ignores_a_hash_key() -> None:
    fields = {"node": "n", "seq": 1}
    assert record_hash(GENESIS_HASH, {**fields, "hash": "x" * 64}) == record_hash(
        GENESIS_HASH, fields
    )


def test_record_hash_depends_on_the_previous_hash() -> None:
    fields = {"node": "n", "seq": 2}
    assert record_hash("1" * 64, fields) != record_hash("2" * 64, fields)


# -- sealing --------------------------------------------------------------------------------


def test_chain_row_hash_recomputes_from_the_stored_record() -> None:
    row = chain_row("host-1", 1, GENESIS_HASH, event())
    record = row_to_record(row)
    assert set(row) == {*HASHED_FIELDS, "hash"}
    assert row["ts"] == "2026-11-21T10:00:00.123456Z"
    assert row["data"] == '{"check":"pii","i":0}'
    assert record.hash == record_hash(GENESIS_HASH, record_fields(record))
    assert record.prev_hash == GENESIS_HASH


def test_chain_row_accepts_mapping_like_data_and_sets() -> None:
    data = types.MappingProxyType({"z": frozenset({"b", "a"}), "y": types.MappingProxyType({})})
    row = chain_row("n", 1, GENESIS_HASH, event(data=data))
    assert row["data"] == '{"y":{},"z":["a","b"]}'


class Kind(str, enum.Enum):  # noqa: UP042 - str() of this kind of enum is "Kind.DECISION"
    DECISION = "decision"


def test_chain_row_coerces_non_str_text_fields_to_their_string_value() -> None:
    mid = uuid.UUID(int=7)
    row = chain_row("n", 1, GENESIS_HASH, event(kind=Kind.DECISION, message_id=mid, outcome=None))
    assert row["kind"] == "decision"
    assert type(row["kind"]) is str
    assert row["message_id"] == str(mid)
    assert row["outcome"] == ""
    record = row_to_record(row)
    assert record.hash == record_hash(GENESIS_HASH, record_fields(record))


def test_coerced_rows_replace_nul_characters_and_say_so() -> None:
    row = chain_row("n", 1, GENESIS_HASH, event(sender="a\x00b"), coerce=True)
    record = row_to_record(row)
    assert record.sender == "a\ufffdb"
    assert record.data["govbus_audit_note_text"] == "NUL characters replaced in sender"
    assert verify_records([record]).ok


def test_coerced_rows_of_ordinary_events_equal_the_fast_path() -> None:
    assert chain_row("n", 1, GENESIS_HASH, event(), coerce=True) == chain_row(
        "n", 1, GENESIS_HASH, event()
    )


def test_chain_row_records_unserializable_data_as_a_note_instead_of_failing() -> None:
    row = chain_row("n", 1, GENESIS_HASH, event(data={"obj": object()}))
    record = row_to_record(row)
    assert "not JSON-serializable" in record.data["govbus_audit_note_data"]
    assert verify_records([record]).ok


def test_chain_row_replaces_an_unusable_ts_with_the_write_time() -> None:
    before = datetime.now(UTC)
    row = chain_row("n", 1, GENESIS_HASH, event(ts="yesterday"))
    record = row_to_record(row)
    assert record.ts >= before.replace(microsecond=0)
    assert "ts unusable" in record.data["govbus_audit_note_ts"]
    assert record.data["check"] == "pii"


# -- verification ---------------------------------------------------------------------------


def test_an_intact_chain_verifies_with_counts() -> None:
    records = chain(5)
    report = verify_records(records, heads_of(records))
    assert report.ok
    assert report.records == 5
    assert report.chains == {"host-1": 5}
    assert report.first_broken is None
    assert report.problem is None


def test_an_empty_store_verifies() -> None:
    assert verify_records([], {}).ok


def test_interleaved_chains_verify_independently() -> None:
    a, b = chain(3, "a"), chain(2, "b")
    mixed = [a[0], b[0], a[1], b[1], a[2]]
    report = verify_records(mixed, {**heads_of(a), **heads_of(b)})
    assert report.ok
    assert report.chains == {"a": 3, "b": 2}


def test_a_changed_field_names_that_record() -> None:
    records = chain(20)
    records[16] = dataclasses.replace(records[16], outcome="deny")
    report = verify_records(records)
    assert not report.ok
    assert (report.node, report.seq) == ("host-1", 17)
    assert report.first_broken == records[16]
    assert report.problem == (
        "record 17 of chain 'host-1': hash does not match its contents (changed after writing?)"
    )
    assert report.records == 16


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "admin"},
        {"ts": T0 + timedelta(microseconds=1)},
        {"data": {"check": "pii", "i": 3, "extra": True}},
        {"message_id": None},
        {"policy_sha256": "cd" * 32},
        {"hash": "f" * 64},
        {"prev_hash": "0" * 63 + "1"},
    ],
)
def test_any_changed_field_is_detected_at_its_record(change: dict[str, object]) -> None:
    records = chain(6)
    records[3] = dataclasses.replace(records[3], **change)  # type: ignore[arg-type]
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 4


def test_data_that_cannot_be_canonicalized_is_reported_not_raised() -> None:
    records = chain(3)
    records[1] = dataclasses.replace(records[1], data={1j: "complex key"})  # type: ignore[dict-item]
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 2


def test_a_deleted_middle_record_is_named_by_its_sequence_number() -> None:
    records = chain(10)
    del records[4]
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 5
    assert report.first_broken is not None
    assert report.first_broken.seq == 6
    assert report.problem == (
        "record 5 of chain 'host-1': missing (deleted or reordered?); the next stored record is 6"
    )


def test_a_deleted_first_record_is_detected() -> None:
    records = chain(3)
    report = verify_records(records[1:])
    assert not report.ok
    assert report.seq == 1


def test_swapped_records_are_detected_at_the_first_swapped_position() -> None:
    records = chain(8)
    records[2], records[6] = records[6], records[2]
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 3


def test_a_renumbered_record_with_a_recomputed_hash_breaks_the_link() -> None:
    records = chain(5)
    # Rewrite record 3 so its own hash is consistent but it chains onto the wrong record.
    forged = dataclasses.replace(records[2], prev_hash=records[0].hash)
    forged = dataclasses.replace(forged, hash=record_hash(forged.prev_hash, record_fields(forged)))
    records[2] = forged
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 3
    assert report.problem is not None
    assert "prev_hash does not match the hash of record 2" in report.problem


def test_record_one_must_chain_onto_the_genesis_hash() -> None:
    first = chain(1)[0]
    forged = dataclasses.replace(first, prev_hash="1" * 64)
    forged = dataclasses.replace(forged, hash=record_hash(forged.prev_hash, record_fields(forged)))
    report = verify_records([forged])
    assert not report.ok
    assert report.problem is not None
    assert "genesis" in report.problem


def test_a_duplicated_record_is_detected() -> None:
    records = chain(4)
    records.insert(3, records[1])
    report = verify_records(records)
    assert not report.ok
    assert report.seq == 4
    assert report.problem is not None
    assert "again" in report.problem


def test_a_deleted_tail_is_invisible_without_heads_and_caught_with_them() -> None:
    records = chain(10)
    heads = heads_of(records)
    assert verify_records(records[:8]).ok  # why the store keeps heads apart from records
    report = verify_records(records[:8], heads)
    assert not report.ok
    assert report.seq == 9
    assert report.first_broken is None
    assert report.problem == (
        "record 9 of chain 'host-1': missing (tail deleted?); the chain ends at record 8 but "
        "its head is record 10"
    )


def test_a_chain_whose_records_are_all_gone_is_caught_by_its_head() -> None:
    records = chain(2)
    report = verify_records([], heads_of(records))
    assert not report.ok
    assert (report.node, report.seq) == ("host-1", 1)


def test_a_rewritten_chain_that_no_longer_matches_its_head_is_detected() -> None:
    original = chain(3)
    heads = heads_of(original)
    rewritten = chain(3)[:2]
    last = chain_row("host-1", 3, rewritten[1].hash, event(99))
    rewritten.append(row_to_record(last))
    report = verify_records(rewritten, heads)
    assert not report.ok
    assert report.seq == 3
    assert report.problem is not None
    assert "differs from the chain head" in report.problem


def test_a_chain_may_run_past_its_head_read_earlier() -> None:
    records = chain(5)
    heads = {"host-1": (3, records[2].hash)}
    assert verify_records(records, heads).ok


def test_a_chain_without_a_head_is_broken_unless_a_late_head_exists() -> None:
    records = chain(3)
    report = verify_records(records, {})
    assert not report.ok
    assert report.node == "host-1"
    assert report.problem is not None
    assert "no head" in report.problem

    verifier = ChainVerifier({})
    for record in records:
        assert verifier.add(record)
    assert verifier.nodes_without_head() == ["host-1"]
    assert verifier.finish(late_heads={"host-1": (7, "f" * 64)}).ok


def test_docstring_examples_run() -> None:
    results = doctest.testmod(govbus.audit.chain)
    assert results.attempted > 0
    assert results.failed == 0
