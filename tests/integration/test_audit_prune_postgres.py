"""Pruning on PostgreSQL: every chain still verifies, tampering after a prune is detected, a live
writer loses nothing, and a version 1 database is migrated.

Prune and a whole-store verify act on every chain, so these tests use a database of their own on
the test server (created and dropped here), never the shared one.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from govbus.audit import SqlAuditStore, verify_url
from govbus.audit.base import AuditEvent
from govbus.audit.database import SCHEMA_VERSION
from govbus.audit.prune import PruneReport, prune_url

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def url(fresh_url: str) -> str:
    """A new, empty database (store-wide prune and verify must not touch other tests' chains)."""
    return fresh_url


def event(i: int, minutes: float | None = None) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(minutes=i if minutes is None else minutes),
        outcome="allow",
        message_id=f"m-{i}",
        sender="planner",
        recipient="advisor",
        msg_type="advice.request",
        data={"i": i, "text": "é ☃"},
    )


async def write(url: str, node: str, events: list[AuditEvent]) -> None:
    store = SqlAuditStore(url, node=node)
    await store.start()
    for item in events:
        store.submit(item)
    await store.close()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def stored(url: str, node: str) -> list[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT seq FROM audit_records WHERE node = :n ORDER BY seq"), {"n": node}
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


async def test_prune_in_steps_keeps_every_chain_verifiable(url: str) -> None:
    await write(url, "a", [event(i) for i in range(40)])
    await write(url, "b", [event(i) for i in range(5)])
    report = prune_url(url, before=T0 + timedelta(minutes=25), batch=10, node="admin", now=NOW)
    assert report.ok
    by_node = {c.node: c for c in report.chains}
    assert (by_node["a"].pruned, by_node["a"].first_kept) == (25, 26)
    assert len(by_node["a"].audit_seqs) == 3  # 10 + 10 + 5
    assert by_node["b"].pruned == 5 and by_node["b"].first_kept is None
    assert stored(url, "a") == list(range(26, 41))
    verified = verify_url(url)
    assert verified.ok, verified.problem
    assert verified.pruned == {"a": 25, "b": 5}
    assert verified.chains == {"a": 15, "admin": 4}


def test_a_dry_run_changes_nothing(url: str) -> None:
    asyncio.run(write(url, "a", [event(i) for i in range(10)]))
    report = prune_url(url, before=T0 + timedelta(minutes=5), dry_run=True, now=NOW)
    assert report.pruned == 5
    assert stored(url, "a") == list(range(1, 11))


@pytest.mark.parametrize(
    ("statements", "seq", "problem"),
    [
        (["UPDATE audit_records SET outcome = 'deny' WHERE node = 'a' AND seq = 8"], 8, "hash"),
        (["UPDATE audit_checkpoints SET hash = repeat('f', 64) WHERE node = 'a'"], 6, "checkpoint"),
        (["DELETE FROM audit_checkpoints WHERE node = 'a'"], 1, "no checkpoint"),
        (["DELETE FROM audit_records WHERE node = 'a' AND seq = 10"], 10, "tail deleted"),
        (
            [
                "DELETE FROM audit_records WHERE node = 'admin'",
                "DELETE FROM audit_heads WHERE node = 'admin'",
            ],
            None,
            "no audit_prune record attests them",
        ),
    ],
    ids=["kept-record", "checkpoint-hash", "checkpoint-deleted", "newest-deleted", "admin-chain"],
)
async def test_tampering_after_a_prune_is_detected(
    url: str, statements: list[str], seq: int | None, problem: str
) -> None:
    await write(url, "a", [event(i) for i in range(10)])
    prune_url(url, before=T0 + timedelta(minutes=5), node="admin", now=NOW)
    assert verify_url(url).ok
    execute(url, *statements)
    report = verify_url(url)
    assert not report.ok
    assert report.seq == seq
    assert report.problem is not None
    assert problem in report.problem


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_live_writer_appending_while_its_chain_is_pruned_loses_nothing(
    url: str, writer: str
) -> None:
    store = SqlAuditStore(url, node="live", writer=writer, flush_interval=0.001)  # type: ignore[arg-type]
    await store.start()
    written = 0
    for i in range(200):
        store.submit(event(i, minutes=i / 60))
        written += 1
    await store.flush()
    reports: list[PruneReport] = []

    def pruning() -> None:
        for step in range(1, 9):
            cut = T0 + timedelta(seconds=25 * step)
            reports.append(prune_url(url, before=cut, batch=9, node="admin", now=NOW))

    thread = threading.Thread(target=pruning)
    thread.start()
    while thread.is_alive():
        store.submit(event(written, minutes=10 + written))
        written += 1
        if written % 20 == 0:
            await store.flush()
        await asyncio.sleep(0.001)
    thread.join()
    await store.close()
    assert all(r.ok for r in reports)
    assert sum(r.pruned for r in reports) == 200
    report = verify_url(url)
    assert report.ok, report.problem
    assert report.chains["live"] + report.pruned["live"] == written


async def test_a_version_1_database_is_migrated_by_prune(url: str) -> None:
    await write(url, "a", [event(i) for i in range(6)])
    execute(url, "DROP TABLE audit_checkpoints", "UPDATE audit_schema_version SET version = 1")
    assert verify_url(url).ok  # read as it is
    prune_url(url, before=T0 + timedelta(minutes=3), node="admin", now=NOW)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version FROM audit_schema_version")).scalar()
    finally:
        engine.dispose()
    assert version == SCHEMA_VERSION
    assert verify_url(url).ok
