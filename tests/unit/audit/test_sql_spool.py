"""SqlAuditStore's own spool: sealed records wait in a local file while the database refuses
writes and go in, in order, when it is back; the chain verifies afterwards."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govbus.audit import SqlAuditStore, count_url, verify_url
from govbus.audit.base import AuditEvent
from govbus.audit.writer import RowSpool
from govbus.errors import AuditUnavailableError


def event(i: int) -> AuditEvent:
    return AuditEvent(kind="decision", ts=datetime.now(UTC), outcome="allow", message_id=f"m-{i}",
                      payload=b'{"secret":"4111 1111 1111 1111"}')  # fmt: skip


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_locked_database_spools_then_catches_up(tmp_path: Path, writer: str) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}?timeout=0.05"
    spool = tmp_path / "spool" / "audit.jsonl"
    store = SqlAuditStore(url, writer=writer, write_timeout=0.3, flush_interval=0.01,  # type: ignore[arg-type]
                          spool=spool)  # fmt: skip
    await store.start()
    try:
        for i in range(5):
            store.submit(event(i))
        await store.flush()
        lock = sqlite3.connect(db)
        lock.execute("BEGIN EXCLUSIVE")  # the database "goes away" for writers
        try:
            for i in range(5, 40):
                store.submit(event(i))
            await store.flush()  # returns: the batch is safe in the spool, not lost
            assert spool.exists()
            text = spool.read_text()
            assert "4111 1111" not in text  # payload hashes only, never payload bytes
            spooled = len(RowSpool(spool).load())
            assert 0 < spooled <= 35
        finally:
            lock.rollback()
            lock.close()
        for i in range(40, 45):
            store.submit(event(i))
        await store.flush()  # the spool goes in first, then this batch
        assert not spool.exists()
    finally:
        await store.close()
    report = verify_url(url)
    assert report.ok, report.problem
    assert count_url(url) == 45
    ids = [r.message_id for r in report_records(url)]
    assert ids == [f"m-{i}" for i in range(45)]


def report_records(url: str) -> list[object]:
    from govbus.audit.database import iter_records_url

    return list(iter_records_url(url))


async def test_without_a_spool_writes_fail_closed(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}?timeout=0.05"
    store = SqlAuditStore(url, write_timeout=0.3, flush_interval=0.01)
    await store.start()
    lock = sqlite3.connect(db)
    try:
        store.submit(event(0))
        await store.flush()
        lock.execute("BEGIN EXCLUSIVE")
        store.submit(event(1))
        with pytest.raises(AuditUnavailableError):
            await store.flush()
    finally:
        lock.rollback()
        lock.close()
        await store.close()


async def test_a_spool_left_by_a_crash_is_replayed_at_start(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}?timeout=0.05"
    spool = tmp_path / "audit.jsonl"
    first = SqlAuditStore(url, write_timeout=0.3, flush_interval=0.01, spool=spool)
    await first.start()
    first.submit(event(0))
    await first.flush()
    lock = sqlite3.connect(db)
    lock.execute("BEGIN EXCLUSIVE")
    first.submit(event(1))
    await first.flush()
    lock.rollback()
    lock.close()
    # The process dies before the database comes back to it (no further batch, no close).
    first._abort.set()
    assert len(RowSpool(spool).load()) == 1
    second = SqlAuditStore(url, node=first.node, write_timeout=0.3, flush_interval=0.01,
                           spool=spool)  # fmt: skip
    await second.start()
    second.submit(event(2))
    await second.close()
    await first.close()
    assert not spool.exists()
    assert verify_url(url).ok
    assert count_url(url) == 3


async def test_when_the_spool_fails_too_writes_fail_closed_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite:///{db}?timeout=0.05"
    folder = tmp_path / "spool"
    store = SqlAuditStore(url, writer="thread", write_timeout=0.3, flush_interval=0.01,
                          spool=folder / "audit.jsonl")  # fmt: skip
    await store.start()
    folder.write_text("")  # the spool's folder is now a file: the spool cannot be written
    lock = sqlite3.connect(db)
    try:
        store.submit(event(0))
        await store.flush()
        lock.execute("BEGIN EXCLUSIVE")
        store.submit(event(1))
        with pytest.raises(AuditUnavailableError, match=r"spool .* cannot be written"):
            await store.flush()
    finally:
        lock.rollback()
        lock.close()
    store.submit(event(2))
    await store.flush()  # the writer kept retrying the database: the batch went in after all
    await store.close()
    assert count_url(url) == 3 and verify_url(url).ok
    assert caplog.text.count("cannot be written") == 1  # said once, not once per retry
