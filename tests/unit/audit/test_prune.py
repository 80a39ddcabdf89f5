"""Pruning on SQLite files: records older than the cut-off go, a checkpoint anchors what stays,
verify still passes and still detects tampering, and the prune itself is audited."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govbus.audit import SqlAuditStore, verify_url
from govbus.audit.chain import PRUNE_OUTCOME, chain_row, checkpoints_digest
from govbus.audit.database import (
    SCHEMA_VERSION,
    normalize_url,
    read_checkpoints,
    reading_engine,
    snapshot,
)
from govbus.audit.prune import prune_url
from govbus.errors import AuditError

from .chains import HOUR, T0, event, query, seqs, sql, write_chain

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 10)  # records 1..10 at T0 + 0h .. 9h
    write_chain(path, "b", 4)
    return path


def prune(db: Path, before: datetime, **kwargs: object) -> object:
    kwargs.setdefault("node", "admin")
    kwargs.setdefault("by", "tester")
    kwargs.setdefault("now", NOW)
    return prune_url(str(db), before=before, **kwargs)  # type: ignore[arg-type]


def checkpoints(db: Path) -> dict[str, tuple[int, str, str, int]]:
    rows = query(db, "SELECT node, seq, hash, ts, generation FROM audit_checkpoints")
    return {node: (seq, digest, ts, gen) for node, seq, digest, ts, gen in rows}


def admin_data(db: Path) -> list[dict[str, object]]:
    rows = query(db, "SELECT data FROM audit_records WHERE node = 'admin' ORDER BY seq")
    return [json.loads(row[0]) for row in rows]


def test_records_before_the_cut_off_go_and_every_chain_still_verifies(db: Path) -> None:
    report = prune(db, T0 + 6 * HOUR)
    assert report.ok
    assert report.pruned == 6 + 4
    assert seqs(db, "a") == [7, 8, 9, 10]
    assert seqs(db, "b") == []
    by_node = {c.node: c for c in report.chains}
    assert (by_node["a"].pruned, by_node["a"].pruned_to, by_node["a"].first_kept) == (6, 6, 7)
    assert (by_node["b"].pruned, by_node["b"].pruned_to, by_node["b"].first_kept) == (4, 4, None)
    assert by_node["a"].last_pruned_ts == "2026-01-01T05:00:00.000000Z"
    verified = verify_url(str(db))
    assert verified.ok, verified.problem
    assert verified.chains == {"a": 4, "admin": 2}
    assert verified.pruned == {"a": 6, "b": 4}


def test_the_checkpoint_anchors_the_first_kept_record(db: Path) -> None:
    (prev_of_7,) = query(db, "SELECT prev_hash FROM audit_records WHERE node='a' AND seq=7")[0]
    (ts_of_6,) = query(db, "SELECT ts FROM audit_records WHERE node='a' AND seq=6")[0]
    prune(db, T0 + 6 * HOUR)
    seq, digest, ts, generation = checkpoints(db)["a"]
    assert (seq, digest, ts) == (6, prev_of_7, ts_of_6)
    assert generation in (1, 2)


def test_each_step_is_audited_with_who_what_and_the_checkpoint_digest(db: Path) -> None:
    prune(db, T0 + 6 * HOUR)
    steps = admin_data(db)
    assert [s["chain"] for s in steps] == ["a", "b"]
    first = steps[0]
    assert first["by"] == "tester"
    assert first["before"] == "2026-01-01T06:00:00.000000Z"
    assert (first["from_seq"], first["to_seq"], first["pruned"]) == (1, 6, 6)
    assert first["first_kept_seq"] == 7
    assert [s["generation"] for s in steps] == [1, 2]
    kinds = query(db, "SELECT kind, outcome, ts FROM audit_records WHERE node = 'admin'")
    assert kinds == [("admin", PRUNE_OUTCOME, "2026-06-01T00:00:00.000000Z")] * 2
    engine = reading_engine(normalize_url(str(db)))
    try:
        with snapshot(engine) as (conn, _):
            every = (read_checkpoints(conn, None) or {}).values()
    finally:
        engine.dispose()
    assert steps[-1]["checkpoints_sha256"] == checkpoints_digest(every)


def test_a_chain_is_cut_at_its_first_record_at_or_after_the_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    late, early = T0 + 10 * HOUR, T0 + HOUR
    times = [T0, T0, late, early, T0 + 20 * HOUR]  # record 4 is old but after a new one
    write_chain(path, "a", [event(i, ts=ts) for i, ts in enumerate(times)])
    report = prune(path, T0 + 5 * HOUR)
    assert report.chains[0].pruned == 2
    assert seqs(path, "a") == [3, 4, 5]  # record 4 stays: the chain stays contiguous
    assert verify_url(str(path)).ok


def test_small_batches_prune_in_steps_to_the_same_result(db: Path) -> None:
    report = prune(db, T0 + 6 * HOUR, batch=4)
    by_node = {c.node: c for c in report.chains}
    assert by_node["a"].audit_seqs == (1, 2)  # 4 + 2 records
    assert by_node["b"].audit_seqs == (3,)
    assert seqs(db, "a") == [7, 8, 9, 10]
    assert [s["pruned"] for s in admin_data(db)] == [4, 2, 4]
    assert verify_url(str(db)).ok


def test_a_dry_run_reports_and_changes_nothing(db: Path) -> None:
    before = query(db, "SELECT count(*) FROM audit_records")
    report = prune(db, T0 + 6 * HOUR, dry_run=True)
    assert report.dry_run and report.audit_node is None
    assert report.pruned == 10
    assert query(db, "SELECT count(*) FROM audit_records") == before
    assert checkpoints(db) == {}


def test_pruning_again_moves_the_checkpoint_forward(db: Path) -> None:
    prune(db, T0 + 3 * HOUR)
    prune(db, T0 + 8 * HOUR, node="admin-2")
    assert seqs(db, "a") == [9, 10]
    seq, _, _, generation = checkpoints(db)["a"]
    assert seq == 8
    assert generation == 3  # a and b, then a again (b had nothing left)
    report = verify_url(str(db))
    assert report.ok, report.problem
    assert report.pruned == {"a": 8, "b": 4}


def test_nothing_to_prune_writes_nothing(db: Path) -> None:
    report = prune(db, T0)
    assert report.pruned == 0
    assert query(db, "SELECT count(*) FROM audit_records WHERE node = 'admin'") == [(0,)]
    assert verify_url(str(db)).ok


def test_a_chain_that_does_not_verify_is_left_alone(db: Path) -> None:
    sql(db, "UPDATE audit_records SET outcome = 'deny' WHERE node = 'a' AND seq = 3")
    report = prune(db, T0 + 6 * HOUR)
    assert not report.ok
    a = next(c for c in report.chains if c.node == "a")
    assert a.pruned == 0 and a.problem is not None
    assert "record 3 of chain 'a': hash does not match" in a.problem
    assert seqs(db, "a") == list(range(1, 11))  # the evidence stays
    assert seqs(db, "b") == []  # the other chain was pruned
    assert not verify_url(str(db)).ok


def test_a_tampered_first_kept_record_stops_the_prune(db: Path) -> None:
    sql(
        db, "UPDATE audit_records SET prev_hash = ? WHERE node = 'a' AND seq = 7", params=["0" * 64]
    )
    report = prune(db, T0 + 6 * HOUR)
    a = next(c for c in report.chains if c.node == "a")
    assert a.problem is not None and a.pruned == 0
    assert "record 7" in a.problem


def test_a_cut_off_in_the_future_is_refused(db: Path) -> None:
    with pytest.raises(AuditError, match="in the future"):
        prune(db, NOW + timedelta(days=1))


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(AuditError, match="no audit database"):
        prune(missing, T0)
    assert not missing.exists()


def test_batch_must_be_positive(db: Path) -> None:
    with pytest.raises(AuditError, match="batch"):
        prune(db, T0, batch=0)


def test_a_version_1_database_is_migrated_by_prune_and_read_as_is_by_verify(db: Path) -> None:
    sql(db, "DROP TABLE audit_checkpoints", "UPDATE audit_schema_version SET version = 1")
    assert verify_url(str(db)).ok  # a reader never migrates: no checkpoints table, no problem
    assert query(db, "SELECT version FROM audit_schema_version") == [(1,)]
    prune(db, T0 + 2 * HOUR, dry_run=True)
    assert query(db, "SELECT version FROM audit_schema_version") == [(1,)]
    prune(db, T0 + 2 * HOUR)
    assert query(db, "SELECT version FROM audit_schema_version") == [(SCHEMA_VERSION,)]
    assert verify_url(str(db)).ok


# -- what verify still detects after a prune --------------------------------------------------


@pytest.mark.parametrize(
    ("statements", "seq", "problem"),
    [
        (["UPDATE audit_records SET outcome = 'deny' WHERE node = 'a' AND seq = 8"], 8, "hash"),
        (["DELETE FROM audit_records WHERE node = 'a' AND seq = 7"], 7, "missing"),
        (["DELETE FROM audit_records WHERE node = 'a' AND seq = 10"], 10, "tail deleted"),
        (
            ["UPDATE audit_checkpoints SET hash = '" + "f" * 64 + "' WHERE node = 'a'"],
            7,
            "checkpoint",
        ),
        (["UPDATE audit_checkpoints SET seq = 7 WHERE node = 'a'"], 1, "checkpoint moved"),
        (["DELETE FROM audit_checkpoints WHERE node = 'a'"], 1, "no checkpoint"),
        (["UPDATE audit_checkpoints SET ts = '2020-01-01' WHERE node = 'b'"], 2, "digest"),
        (["DELETE FROM audit_checkpoints WHERE node = 'b'"], 1, "tail deleted"),
        (["DELETE FROM audit_records WHERE node = 'admin' AND seq = 2"], 2, "tail deleted"),
        (
            [
                "DELETE FROM audit_records WHERE node = 'admin'",
                "DELETE FROM audit_heads WHERE node = 'admin'",
            ],
            None,
            "no audit_prune record attests them",
        ),
        (["UPDATE audit_checkpoints SET generation = 3 WHERE node = 'b'"], 2, "generation"),
    ],
    ids=[
        "changed-kept-record",
        "deleted-first-kept",
        "deleted-newest",
        "forged-checkpoint-hash",
        "checkpoint-moved-forward",
        "checkpoint-deleted",
        "checkpoint-column-changed",
        "checkpoint-of-fully-pruned-chain-deleted",
        "audit-prune-record-deleted",
        "admin-chain-deleted",
        "checkpoint-generation-forged",
    ],
)
def test_tampering_after_a_prune_is_detected(
    db: Path, statements: list[str], seq: int | None, problem: str
) -> None:
    prune(db, T0 + 6 * HOUR)
    assert verify_url(str(db)).ok
    sql(db, *statements)
    report = verify_url(str(db))
    assert not report.ok
    assert report.problem is not None
    assert problem in report.problem
    assert report.seq == seq


def test_a_forged_first_kept_record_is_detected_at_the_checkpoint(db: Path) -> None:
    """Sealed anew at seq 7 (so its own hash is right) but not on the pruned record 6."""
    prune(db, T0 + 6 * HOUR)
    forged = chain_row("a", 7, "1" * 64, event(99))
    assignments = ", ".join(f"{name} = :{name}" for name in forged)
    sql(
        db,
        f"UPDATE audit_records SET {assignments} WHERE node = :node AND seq = :seq",
        params=forged,
    )
    report = verify_url(str(db))
    assert not report.ok
    assert (report.node, report.seq) == ("a", 7)
    assert report.problem is not None
    assert "prev_hash does not match its checkpoint" in report.problem


# -- live writers -----------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_live_writer_appending_while_its_chain_is_pruned_loses_nothing(
    tmp_path: Path, writer: str
) -> None:
    path = tmp_path / "audit.db"
    store = SqlAuditStore(str(path), node="live", writer=writer, flush_interval=0.001)  # type: ignore[arg-type]
    await store.start()
    written = 0
    for i in range(300):
        await store.write(event(i, ts=T0 + i * timedelta(seconds=1)))
        written += 1
    stop = threading.Event()
    results: list[object] = []

    def pruning() -> None:
        cut = T0 + timedelta(seconds=1)
        while not stop.is_set() and cut < T0 + timedelta(seconds=300):
            results.append(prune_url(str(path), before=cut, batch=7, node="admin", now=NOW))
            cut += timedelta(seconds=23)

    thread = threading.Thread(target=pruning)
    thread.start()
    while thread.is_alive():
        store.submit(event(written, ts=T0 + timedelta(seconds=300 + written)))
        written += 1
        if written % 25 == 0:
            await store.flush()
        await asyncio.sleep(0)
    stop.set()
    thread.join()
    await store.close()
    pruned = sum(getattr(r, "pruned", 0) for r in results)
    assert pruned > 250
    assert all(getattr(r, "ok", False) for r in results)
    report = verify_url(str(path))
    assert report.ok, report.problem
    assert report.chains["live"] + report.pruned["live"] == written
    assert seqs(path, "live")[-1] == written


async def test_a_writer_continues_a_fully_pruned_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 5)
    prune(path, T0 + 10 * HOUR)
    assert seqs(path, "a") == []
    write_chain(path, "a", [event(i) for i in range(5, 8)])
    assert seqs(path, "a") == [6, 7, 8]
    report = verify_url(str(path))
    assert report.ok, report.problem
    assert report.pruned == {"a": 5}
