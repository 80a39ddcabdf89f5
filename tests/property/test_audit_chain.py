"""Property: any single change, deletion or swap in a chain is detected, at or before its place."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from govbus.audit.base import GENESIS_HASH, AuditEvent, AuditRecord
from govbus.audit.chain import chain_row, row_to_record, verify_records

SETTINGS = settings(max_examples=60, deadline=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
texts = st.text(max_size=12)

events = st.builds(
    AuditEvent,
    kind=st.sampled_from(["decision", "delivery", "fallback", "failure", "admin"]),
    ts=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    outcome=texts,
    message_id=st.none() | texts,
    correlation_id=st.none() | texts,
    msg_type=st.none() | texts,
    sender=st.none() | texts,
    recipient=st.none() | texts,
    policy_sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    data=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
)


def seal(
    node: str, batch: list[AuditEvent]
) -> tuple[list[AuditRecord], dict[str, tuple[int, str]]]:
    records, prev = [], GENESIS_HASH
    for seq, event in enumerate(batch, start=1):
        row = chain_row(node, seq, prev, event)
        records.append(row_to_record(row))
        prev = row["hash"]
    heads = {node: (records[-1].seq, records[-1].hash)} if records else {}
    return records, heads


@SETTINGS
@given(st.lists(events, max_size=15), st.sampled_from(["host-1", "n", "é-node"]))
def test_an_unmutated_chain_always_verifies(batch: list[AuditEvent], node: str) -> None:
    records, heads = seal(node, batch)
    report = verify_records(records, heads)
    assert report.ok, report.problem
    assert report.records == len(batch)


def changed(value: Any, replacement: Any) -> Any:
    assume(replacement != value)
    return replacement


@SETTINGS
@given(st.lists(events, min_size=1, max_size=15), st.data())
def test_a_changed_field_is_detected_at_or_before_the_record(
    batch: list[AuditEvent], data: st.DataObject
) -> None:
    records, heads = seal("host-1", batch)
    k = data.draw(st.integers(0, len(records) - 1), label="index")
    record = records[k]
    field = data.draw(
        st.sampled_from([f.name for f in dataclasses.fields(AuditRecord)]), label="field"
    )
    old = getattr(record, field)
    new: Any
    if field == "seq":
        new = changed(old, data.draw(st.integers(-5, 40)))
    elif field == "ts":
        new = old + timedelta(microseconds=data.draw(st.integers(-(10**9), 10**9).filter(bool)))
    elif field == "data":
        new = changed(old, data.draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4)))
    elif field in ("hash", "prev_hash", "policy_sha256"):
        new = changed(old, data.draw(st.text("0123456789abcdef", min_size=64, max_size=64)))
    elif field in ("node", "kind", "outcome"):
        new = changed(old, data.draw(texts))
    else:
        new = changed(old, data.draw(st.none() | texts))
    records[k] = dataclasses.replace(record, **{field: new})
    report = verify_records(records, heads)
    assert not report.ok
    assert report.seq is not None
    assert report.seq <= k + 1, report.problem


@SETTINGS
@given(st.lists(events, min_size=1, max_size=15), st.data())
def test_a_deleted_record_is_detected_at_its_place(
    batch: list[AuditEvent], data: st.DataObject
) -> None:
    records, heads = seal("host-1", batch)
    k = data.draw(st.integers(0, len(records) - 1), label="index")
    del records[k]
    report = verify_records(records, heads)
    assert not report.ok
    assert report.seq == k + 1, report.problem


@SETTINGS
@given(st.lists(events, min_size=2, max_size=15), st.data())
def test_two_swapped_records_are_detected_at_the_first(
    batch: list[AuditEvent], data: st.DataObject
) -> None:
    records, heads = seal("host-1", batch)
    i = data.draw(st.integers(0, len(records) - 2), label="first")
    j = data.draw(st.integers(i + 1, len(records) - 1), label="second")
    records[i], records[j] = records[j], records[i]
    report = verify_records(records, heads)
    assert not report.ok
    assert report.seq is not None
    assert report.seq <= i + 1, report.problem
