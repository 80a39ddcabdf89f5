"""The verifier and pruned chains: a chain may start at its checkpoint, the checkpoint must agree
with the records and the head, and the checkpoints must be the ones the newest audit_prune record
attests. Pure: records sealed in memory, no database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from govbus.audit.base import GENESIS_HASH, AuditCheckpoint, AuditEvent, AuditRecord
from govbus.audit.chain import (
    PRUNE_OUTCOME,
    RECORD_COLUMNS,
    ChainVerifier,
    chain_row,
    checkpoints_digest,
    row_problem,
    row_to_record,
    verify_records,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seal(node: str, events: list[AuditEvent], seq: int = 0, prev: str = GENESIS_HASH) -> list[Any]:
    rows = []
    for ev in events:
        seq += 1
        row = chain_row(node, seq, prev, ev)
        prev = row["hash"]
        rows.append(row)
    return rows


def ev(i: int, **data: Any) -> AuditEvent:
    return AuditEvent(
        kind="decision", ts=T0 + timedelta(minutes=i), outcome="allow", data={"i": i, **data}
    )


def records(rows: list[dict[str, Any]]) -> list[AuditRecord]:
    return [row_to_record(row) for row in rows]


def checkpoint_at(row: dict[str, Any], generation: int = 1) -> AuditCheckpoint:
    return AuditCheckpoint(
        node=row["node"],
        seq=row["seq"],
        hash=row["hash"],
        ts=row["ts"],
        generation=generation,
        pruned_at="2026-02-01T00:00:00.000000Z",
    )


def prune_record(
    node: str, seq: int, prev: str, checkpoints: list[AuditCheckpoint], generation: int
) -> dict[str, Any]:
    data = {"generation": generation, "checkpoints_sha256": checkpoints_digest(checkpoints)}
    event = AuditEvent(kind="admin", ts=T0, outcome=PRUNE_OUTCOME, data=data)
    return chain_row(node, seq, prev, event)


def head(rows: list[dict[str, Any]]) -> tuple[int, str]:
    return rows[-1]["seq"], rows[-1]["hash"]


@pytest.fixture
def pruned() -> tuple[list[AuditRecord], dict[str, tuple[int, str]], dict[str, AuditCheckpoint]]:
    """Chain 'a' of 10 records with 1-4 pruned, attested by an audit_prune record in 'admin'."""
    rows = seal("a", [ev(i) for i in range(10)])
    checkpoint = checkpoint_at(rows[3])
    admin = [prune_record("admin", 1, GENESIS_HASH, [checkpoint], 1)]
    kept = rows[4:]
    heads = {"a": head(rows), "admin": head(admin)}
    return records(kept + admin), heads, {"a": checkpoint}


def test_a_chain_may_start_after_its_checkpoint(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    report = verify_records(kept, heads, checkpoints)
    assert report.ok, report.problem
    assert report.chains == {"a": 6, "admin": 1}
    assert report.pruned == {"a": 4}


def test_without_the_checkpoint_the_missing_first_records_are_named(pruned: Any) -> None:
    kept, heads, _ = pruned
    report = verify_records(kept, heads, {})
    assert not report.ok
    assert (report.node, report.seq) == ("a", 1)
    assert report.problem is not None
    assert "record 1 of chain 'a': missing" in report.problem
    assert "no checkpoint" in report.problem


def test_a_checkpoint_with_another_hash_breaks_the_first_kept_record(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    forged = {"a": dataclasses.replace(checkpoints["a"], hash="f" * 64)}
    report = verify_records(kept, heads, forged)
    assert not report.ok
    assert (report.node, report.seq) == ("a", 5)
    assert report.problem is not None
    assert "checkpoint" in report.problem


def test_a_checkpoint_moved_forward_leaves_records_unanchored(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    moved = {"a": dataclasses.replace(checkpoints["a"], seq=6)}
    report = verify_records(kept, heads, moved)
    assert not report.ok
    assert (report.node, report.seq) == ("a", 1)
    assert report.problem is not None
    assert "next stored record is 5, which its checkpoint says was pruned" in report.problem


def test_records_before_a_checkpoint_must_lead_to_it() -> None:
    rows = seal("a", [ev(i) for i in range(6)])
    heads = {"a": head(rows)}
    good = checkpoint_at(rows[2])
    verifier = ChainVerifier(heads, {"a": good})
    assert all(verifier.add(r) for r in records(rows))
    assert verifier.finish().ok
    bad = dataclasses.replace(good, hash="e" * 64)
    report = ChainVerifier(heads, {"a": bad})
    for record in records(rows):
        if not report.add(record):
            break
    result = report.finish()
    assert not result.ok
    assert result.seq == 3
    assert result.problem is not None
    assert "differs from the chain's checkpoint" in result.problem


def test_a_fully_pruned_chain_is_its_checkpoint_and_head() -> None:
    rows = seal("a", [ev(i) for i in range(3)])
    checkpoint = checkpoint_at(rows[-1])
    assert ChainVerifier({"a": head(rows)}, {"a": checkpoint}).finish().ok
    report = ChainVerifier({"a": (3, "d" * 64)}, {"a": checkpoint}).finish()
    assert not report.ok
    assert report.problem is not None
    assert "does not match its checkpoint" in report.problem
    report = ChainVerifier({"a": (5, "d" * 64)}, {"a": checkpoint}).finish()
    assert not report.ok
    assert report.problem is not None
    assert "tail deleted" in report.problem


def test_a_checkpoint_without_a_head_is_broken() -> None:
    rows = seal("a", [ev(i) for i in range(3)])
    report = ChainVerifier({}, {"a": checkpoint_at(rows[-1])}).finish()
    assert not report.ok
    assert report.problem is not None
    assert "checkpoint" in report.problem and "no head" in report.problem


def test_a_head_moved_before_the_checkpoint_is_detected(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    report = verify_records(kept, {**heads, "a": (2, "c" * 64)}, checkpoints)
    assert not report.ok
    assert report.problem is not None
    assert "does not match its checkpoint" in report.problem


# -- attestation ----------------------------------------------------------------------------


def test_checkpoints_without_an_audit_prune_record_are_not_attested(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    without = [r for r in kept if r.node != "admin"]
    report = verify_records(without, {"a": heads["a"]}, checkpoints)
    assert not report.ok
    assert report.problem is not None
    assert "no audit_prune record attests them" in report.problem


def test_a_changed_checkpoint_column_misses_the_attested_digest(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    changed = {"a": dataclasses.replace(checkpoints["a"], ts="2020-01-01T00:00:00.000000Z")}
    report = verify_records(kept, heads, changed)
    assert not report.ok
    assert (report.node, report.seq) == ("admin", 1)
    assert report.problem is not None
    assert "do not match the digest" in report.problem


def test_an_added_checkpoint_is_detected(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    extra_rows = seal("b", [ev(i) for i in range(2)])
    extra = checkpoint_at(extra_rows[-1], generation=1)
    report = verify_records(kept, {**heads, "b": head(extra_rows)}, {**checkpoints, "b": extra})
    assert not report.ok
    assert report.problem is not None
    assert "digest" in report.problem


def test_a_newer_generation_than_attested_means_a_forged_checkpoint(pruned: Any) -> None:
    kept, heads, checkpoints = pruned
    newer = {"a": dataclasses.replace(checkpoints["a"], generation=2)}
    report = verify_records(kept, heads, newer)
    assert not report.ok
    assert report.problem is not None
    assert "generation 1 but the checkpoints were last written by generation 2" in report.problem


def test_the_newest_generation_decides(pruned: Any) -> None:
    """Two prune steps: the older audit_prune record's digest is history, the newest counts."""
    kept, heads, checkpoints = pruned
    admin_rows = [prune_record("admin", 1, GENESIS_HASH, list(checkpoints.values()), 1)]
    later = dataclasses.replace(checkpoints["a"], generation=2)
    admin_rows.append(prune_record("admin", 2, admin_rows[0]["hash"], [later], 2))
    a_only = [r for r in kept if r.node == "a"]
    report = verify_records(
        a_only + records(admin_rows), {**heads, "admin": head(admin_rows)}, {"a": later}
    )
    assert report.ok, report.problem


def test_verifying_one_chain_does_not_attest() -> None:
    rows = seal("a", [ev(i) for i in range(5)])
    verifier = ChainVerifier({"a": head(rows)}, {"a": checkpoint_at(rows[1])})
    for record in records(rows[2:]):
        assert verifier.add(record)
    assert verifier.finish().ok


def test_digest_covers_every_column_and_ignores_order() -> None:
    rows = seal("a", [ev(i) for i in range(2)]) + seal("b", [ev(i) for i in range(2)])
    a, b = checkpoint_at(rows[1]), checkpoint_at(rows[3])
    assert checkpoints_digest([a, b]) == checkpoints_digest([b, a])
    for name, value in [("seq", 9), ("hash", "0" * 64), ("ts", "x"), ("generation", 7),
                        ("pruned_at", "y"), ("node", "c")]:  # fmt: skip
        assert checkpoints_digest([dataclasses.replace(a, **{name: value}), b]) != (
            checkpoints_digest([a, b])
        ), name


# -- the fast row path decides as the record path -------------------------------------------


def as_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in RECORD_COLUMNS)


def test_add_rows_verifies_intact_rows_and_counts_them() -> None:
    rows = seal("a", [ev(i) for i in range(20)]) + seal("b", [ev(i) for i in range(3)])
    heads = {"a": head(rows[:20]), "b": head(rows[20:])}
    verifier = ChainVerifier(heads)
    assert verifier.add_rows([as_tuple(r) for r in rows[:7]])
    assert verifier.add_rows([as_tuple(r) for r in rows[7:]])
    report = verifier.finish()
    assert report.ok
    assert report.records == 23
    assert report.chains == {"a": 20, "b": 3}


def test_add_rows_accepts_reformatted_data_that_means_the_same() -> None:
    """The record path canonicalizes data; so does add_rows when the verbatim hash misses."""
    rows = seal("a", [ev(i) for i in range(3)])
    original = as_tuple(rows[1])
    same = [*original]
    same[11] = same[11].replace(":", " : ")  # '{"i":1}' -> '{"i" : 1}': other bytes, same JSON
    assert same[11] != original[11]
    assert row_problem(tuple(same)) is None
    verifier = ChainVerifier({"a": head(rows)})
    assert verifier.add_rows([as_tuple(rows[0]), tuple(same), as_tuple(rows[2])])
    assert verifier.finish().ok


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("outcome", "deny", "hash does not match"),
        ("data", '{"i":99}', "hash does not match"),
        ("data", "not json", "cannot be read"),
        ("ts", "yesterday", "cannot be read"),
        ("seq", "x", "cannot be read"),
        ("prev_hash", None, "hash does not match"),
        ("prev_hash", "0" * 64, "hash does not match"),
    ],
)
def test_add_rows_reports_what_add_reports(column: str, value: Any, problem: str) -> None:
    rows = seal("a", [ev(i) for i in range(6)])
    heads = {"a": head(rows)}
    tampered = [as_tuple(r) for r in rows]
    index = RECORD_COLUMNS.index(column)
    tampered[2] = (*tampered[2][:index], value, *tampered[2][index + 1 :])
    fast = ChainVerifier(heads)
    fast.add_rows(tampered)
    slow = ChainVerifier(heads)
    for row in tampered:
        if not slow.add_row(row):
            break
    fast_report, slow_report = fast.finish(), slow.finish()
    assert not fast_report.ok
    assert fast_report == slow_report
    assert fast_report.problem is not None
    assert problem in fast_report.problem
