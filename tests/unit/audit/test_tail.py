"""AuditTail: the newest records across chains by time, then each new record exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from govbus.audit.prune import prune_url
from govbus.audit.tail import AuditTail
from govbus.errors import AuditError

from .chains import HOUR, T0, event, write_chain


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    # Interleaved in time: a's records at even hours, b's at odd hours.
    write_chain(path, "a", [event(i, ts=T0 + 2 * i * HOUR) for i in range(5)])
    write_chain(path, "b", [event(i, ts=T0 + (2 * i + 1) * HOUR) for i in range(5)])
    return path


@pytest.fixture
def tail(db: Path) -> Iterator[AuditTail]:
    reader = AuditTail(str(db))
    yield reader
    reader.close()


def keys(rows: list[tuple[object, ...]]) -> list[tuple[object, object]]:
    return [(row[0], row[1]) for row in rows]


def test_the_last_n_records_across_chains_oldest_first(tail: AuditTail) -> None:
    assert keys(tail.last(4)) == [("a", 4), ("b", 4), ("a", 5), ("b", 5)]
    assert len(tail.last(100)) == 10
    assert tail.last(0) == []


def test_poll_returns_each_new_record_once_in_time_order(tail: AuditTail, db: Path) -> None:
    tail.last(3)
    assert tail.poll() == []
    write_chain(db, "b", [event(i, ts=T0 + (20 + i) * HOUR) for i in range(5, 7)])
    write_chain(db, "a", [event(5, ts=T0 + 20.5 * HOUR)])
    assert keys(tail.poll()) == [("a", 6), ("b", 6), ("b", 7)]
    assert tail.poll() == []


def test_a_new_chain_is_followed_from_its_first_record(tail: AuditTail, db: Path) -> None:
    tail.last(1)
    write_chain(db, "c", 2)
    assert keys(tail.poll()) == [("c", 1), ("c", 2)]


def test_a_new_pruned_chain_is_followed_from_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 1)
    reader = AuditTail(str(path))
    try:
        reader.last(1)
        write_chain(path, "late", 4)
        prune_url(str(path), before=T0 + 2 * HOUR, node="admin", now=T0 + 100 * HOUR)
        found = keys(reader.poll())
        assert ("late", 3) in found and ("late", 4) in found
        assert ("late", 1) not in found
        assert ("admin", 1) in found
    finally:
        reader.close()


def test_a_missing_database_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="no audit database"):
        AuditTail(str(tmp_path / "missing.db"))
