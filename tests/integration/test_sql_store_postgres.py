"""SqlAuditStore against a real PostgreSQL server: the same core behaviours as on SQLite.

The database is shared with other tests, so every test writes its own chain (a unique node name),
verifies only that chain, and deletes its rows afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from govbus.audit import SqlAuditStore, count_url, verify_url
from govbus.audit.base import AuditEvent

from .conftest import POSTGRES_URL as URL

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

MakeStore = Callable[..., SqlAuditStore]


@pytest.fixture
def node(engine: sa.Engine) -> Iterator[str]:
    name = f"pytest-{uuid.uuid4().hex[:12]}"
    yield name
    with engine.begin() as conn:
        if sa.inspect(conn).has_table("audit_records"):
            conn.execute(sa.text("DELETE FROM audit_records WHERE node = :n"), {"n": name})
            conn.execute(sa.text("DELETE FROM audit_heads WHERE node = :n"), {"n": name})


@pytest.fixture
def writer() -> str:
    """Where the store seals and inserts; tests that matter for both modes parametrize it."""
    return "thread"


BOTH_WRITERS = pytest.mark.parametrize("writer", ["thread", "process"])


@pytest.fixture
async def make_store(node: str, writer: str) -> AsyncIterator[MakeStore]:
    stores: list[SqlAuditStore] = []

    def make(**kwargs: Any) -> SqlAuditStore:
        kwargs.setdefault("writer", writer)
        store = SqlAuditStore(URL, node=node, **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


def event(i: int) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(milliseconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        correlation_id="c-1",
        sender="planner",
        recipient="advisor",
        data={"i": i, "text": "é ☃", "f": 0.1},
    )


async def write_n(store: SqlAuditStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.submit(event(i))
    await store.flush()


def execute(engine: sa.Engine, node: str, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), {"n": node})


@BOTH_WRITERS
async def test_write_flush_read_and_verify(make_store: MakeStore, node: str) -> None:
    store = make_store(batch_size=4)
    await store.start()
    await store.write(event(0))
    await write_n(store, 9, start=1)
    records = [r async for r in store.records(node=node)]
    assert [r.seq for r in records] == list(range(1, 11))
    assert [r.data["i"] for r in records] == list(range(10))
    assert records[0].ts == T0
    report = await store.verify(node=node)
    assert report.ok
    assert report.chains == {node: 10}
    assert count_url(URL, node=node) == 10


@BOTH_WRITERS
async def test_a_restart_continues_the_same_chain(make_store: MakeStore, node: str) -> None:
    first = make_store()
    await first.start()
    await write_n(first, 3)
    await first.close()
    second = make_store()
    await second.start()
    await write_n(second, 2, start=3)
    records = [r async for r in second.records(node=node)]
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[3].prev_hash == records[2].hash
    assert verify_url(URL, node=node).ok


async def test_concurrent_writes_share_commits(make_store: MakeStore, node: str) -> None:
    store = make_store(flush_interval=30.0)
    await store.start()
    await asyncio.gather(*(store.write(event(i)) for i in range(200)))
    assert count_url(URL, node=node) == 200
    assert store.batches < 100


async def test_a_second_writer_on_the_same_chain_is_re_chained_after_it(
    make_store: MakeStore, node: str, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = make_store(), make_store()
    await a.start()
    await b.start()
    await a.write(event(0))
    with caplog.at_level(logging.WARNING, logger="govbus.audit"):
        await b.write(event(1))
    assert "re-chaining a batch of 1 records" in caplog.text
    report = verify_url(URL, node=node)
    assert report.ok
    assert report.chains == {node: 2}


@BOTH_WRITERS
async def test_a_value_postgres_refuses_is_coerced_not_stalled(
    make_store: MakeStore, node: str
) -> None:
    store = make_store(write_timeout=2.0)
    await store.start()
    await store.write(AuditEvent(kind="admin", ts=T0, outcome="ok", sender="a\x00b"))
    (record,) = [r async for r in store.records(node=node)]
    assert record.sender == "a\ufffdb"
    assert "NUL" in record.data["govbus_audit_note_text"]
    assert verify_url(URL, node=node).ok


@pytest.mark.parametrize(
    ("statements", "seq", "problem"),
    [
        (["UPDATE audit_records SET outcome = 'deny' WHERE node = :n AND seq = 3"], 3, "hash"),
        (["DELETE FROM audit_records WHERE node = :n AND seq = 5"], 5, "missing"),
        (["DELETE FROM audit_records WHERE node = :n AND seq >= 9"], 9, "tail deleted"),
        (
            [
                "UPDATE audit_records SET seq = -1 WHERE node = :n AND seq = 3",
                "UPDATE audit_records SET seq = 3 WHERE node = :n AND seq = 7",
                "UPDATE audit_records SET seq = 7 WHERE node = :n AND seq = -1",
            ],
            3,
            "hash",
        ),
    ],
    ids=["changed-field", "deleted-middle", "deleted-tail", "swapped-seq"],
)
async def test_tampering_is_detected_and_the_record_named(
    make_store: MakeStore,
    node: str,
    engine: sa.Engine,
    statements: list[str],
    seq: int,
    problem: str,
) -> None:
    store = make_store()
    await store.start()
    await write_n(store, 10)
    assert (await store.verify(node=node)).ok
    execute(engine, node, *statements)
    report = verify_url(URL, node=node)
    assert not report.ok
    assert (report.node, report.seq) == (node, seq)
    assert report.problem is not None
    assert problem in report.problem


@BOTH_WRITERS
async def test_verify_streams_in_one_snapshot_while_the_writer_appends(
    make_store: MakeStore, node: str
) -> None:
    """Verify reads heads and records in one snapshot through a server-side cursor, in small
    fetches here: a chain that grows meanwhile never looks cut short."""
    store = make_store(flush_interval=0.001)
    await store.start()
    await write_n(store, 300)
    reports = []
    for round_ in range(5):
        for i in range(50):
            store.submit(event(300 + 50 * round_ + i))
        reports.append(await asyncio.to_thread(verify_url, URL, node=node, page_size=7 + round_))
    await store.flush()
    assert all(r.ok for r in reports), [r.problem for r in reports]
    assert [r.records for r in reports] == sorted(r.records for r in reports)
    assert reports[0].records >= 300
    final = verify_url(URL, node=node)
    assert final.ok and final.records == 550
