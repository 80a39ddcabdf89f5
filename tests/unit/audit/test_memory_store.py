"""MemoryAuditStore: the audit protocol in memory, chained with the same code as the SQL store."""

from __future__ import annotations

import dataclasses
import doctest
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

import govbus.audit.memory
from govbus.audit import AuditStore, MemoryAuditStore, record_hash, verify_records
from govbus.audit.base import GENESIS_HASH, AuditEvent
from govbus.audit.chain import default_node_name, record_fields
from govbus.errors import AuditError

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def event(i: int, **data: object) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(seconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        data={"i": i, **data},
    )


@pytest.fixture
async def store() -> AsyncIterator[MemoryAuditStore]:
    s = MemoryAuditStore(node="mem-1")
    await s.start()
    yield s
    await s.close()


def test_it_satisfies_the_audit_store_protocol() -> None:
    store: AuditStore = MemoryAuditStore(node="x")
    assert store.node == "x"


def test_default_node_is_host_and_pid() -> None:
    assert MemoryAuditStore().node == default_node_name()


async def test_submit_before_start_is_refused() -> None:
    with pytest.raises(AuditError, match="not started"):
        MemoryAuditStore().submit(event(0))


async def test_submit_and_write_after_close_are_refused(store: MemoryAuditStore) -> None:
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        store.submit(event(0))
    with pytest.raises(AuditError, match="closed"):
        await store.write(event(0))
    with pytest.raises(AuditError, match="closed"):
        await store.start()


async def test_submit_and_write_append_chained_records(store: MemoryAuditStore) -> None:
    store.submit(event(0))
    await store.write(event(1))
    await store.flush()
    first, second = store.stored
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.hash == record_hash(second.prev_hash, record_fields(second))
    assert store.heads == {"mem-1": (2, second.hash)}
    assert (await store.verify()).ok


async def test_stored_data_is_a_copy_of_the_event_data(store: MemoryAuditStore) -> None:
    data = {"k": [1]}
    store.submit(AuditEvent(kind="admin", ts=T0, outcome="ok", data=data))
    data["k"].append(2)
    assert store.stored[0].data == {"k": [1]}
    assert (await store.verify()).ok


async def test_records_are_ordered_and_filtered_by_node(store: MemoryAuditStore) -> None:
    other = MemoryAuditStore(node="mem-0")
    await other.start()
    for i in range(3):
        store.submit(event(i))
        other.submit(event(i))
    # One list holding both chains, in write order, as a shared database would.
    store.stored = [r for pair in zip(store.stored, other.stored, strict=True) for r in pair]
    store.heads.update(other.heads)
    got = [(r.node, r.seq) async for r in store.records()]
    assert got == [
        ("mem-0", 1),
        ("mem-0", 2),
        ("mem-0", 3),
        ("mem-1", 1),
        ("mem-1", 2),
        ("mem-1", 3),
    ]
    assert [r.seq async for r in store.records(node="mem-1")] == [1, 2, 3]
    report = await store.verify()
    assert report.ok
    assert report.chains == {"mem-1": 3, "mem-0": 3}
    await other.close()


async def test_a_changed_record_is_detected(store: MemoryAuditStore) -> None:
    for i in range(5):
        store.submit(event(i))
    store.stored[2] = dataclasses.replace(store.stored[2], outcome="deny")
    report = await store.verify()
    assert not report.ok
    assert report.seq == 3
    assert report.problem is not None
    assert "changed after writing" in report.problem


async def test_a_deleted_tail_is_detected_through_the_heads(store: MemoryAuditStore) -> None:
    for i in range(5):
        store.submit(event(i))
    del store.stored[3:]
    report = await store.verify()
    assert not report.ok
    assert report.seq == 4
    assert report.problem is not None
    assert "tail deleted" in report.problem


async def test_the_writer_keeps_its_position_when_records_are_tampered_with(
    store: MemoryAuditStore,
) -> None:
    for i in range(3):
        store.submit(event(i))
    last_hash = store.stored[-1].hash
    del store.stored[-1]
    store.submit(event(3))
    assert store.stored[-1].seq == 4
    assert store.stored[-1].prev_hash == last_hash
    report = await store.verify()
    assert not report.ok
    assert report.seq == 3


async def test_verify_one_node_ignores_other_chains(store: MemoryAuditStore) -> None:
    store.submit(event(0))
    store.stored.append(dataclasses.replace(store.stored[0], node="other", outcome="x"))
    assert not (await store.verify()).ok
    assert (await store.verify(node="mem-1")).ok
    assert not (await store.verify(node="other")).ok
    assert verify_records(store.stored[:1], {"mem-1": store.heads["mem-1"]}).ok


def test_docstring_examples_run() -> None:
    results = doctest.testmod(govbus.audit.memory)
    assert results.attempted > 0
    assert results.failed == 0
