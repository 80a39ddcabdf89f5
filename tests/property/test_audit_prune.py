"""Properties of pruning and verifying (SQLite files):

* any prune point, in any batch size, leaves a store that verifies, with exactly the records from
  the chain's first record at or after the cut-off kept;
* after any prune, any change to a kept record, or its deletion, is detected;
* the fast row path of the verifier decides exactly as the record path, for any tampering;
* verifying in parallel never says "intact" where one process says "broken".
"""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from govbus.audit import verify_url
from govbus.audit.base import GENESIS_HASH
from govbus.audit.chain import RECORD_COLUMNS, ChainVerifier, chain_row
from govbus.audit.database import (
    normalize_url,
    read_checkpoints,
    read_heads,
    reading_engine,
    snapshot,
)
from govbus.audit.parallel import verify_parallel
from govbus.audit.prune import prune_url
from tests.unit.audit.chains import event, write_chain

SETTINGS = settings(max_examples=40, deadline=None)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)

# Minutes after T0 of each record: mostly increasing, sometimes back in time (clock steps).
offsets = st.lists(st.integers(min_value=0, max_value=120), min_size=1, max_size=25)


def build(path: Path, chains: list[list[int]]) -> None:
    for index, minutes in enumerate(chains):
        events = [event(i, ts=T0 + timedelta(minutes=m)) for i, m in enumerate(minutes)]
        write_chain(path, f"n{index}", events, batch=7)


def stored(path: Path, node: str) -> list[int]:
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT seq FROM audit_records WHERE node = ? ORDER BY seq", (node,))
        return [row[0] for row in rows]
    finally:
        con.close()


def expected_kept(minutes: list[int], cut: int) -> list[int]:
    """Seqs kept: from the first record at or after the cut-off to the end."""
    for index, m in enumerate(minutes):
        if m >= cut:
            return list(range(index + 1, len(minutes) + 1))
    return []


@SETTINGS
@given(
    chains=st.lists(offsets, min_size=1, max_size=3),
    cut=st.integers(min_value=0, max_value=130),
    batch=st.integers(min_value=1, max_value=30),
    again=st.none() | st.integers(min_value=0, max_value=130),
)
def test_any_prune_point_keeps_every_chain_verifiable(
    chains: list[list[int]], cut: int, batch: int, again: int | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.db"
        build(path, chains)
        cuts = [cut] if again is None else [cut, again]
        for number, minutes in enumerate(cuts):
            report = prune_url(
                str(path),
                before=T0 + timedelta(minutes=minutes),
                batch=batch,
                node=f"admin-{number}",
                now=NOW,
            )
            assert report.ok
        verified = verify_url(str(path))
        assert verified.ok, verified.problem
        for index, minutes in enumerate(chains):
            node = f"n{index}"
            # Pruning twice keeps what the later (or larger) cut-off keeps.
            kept = min((expected_kept(minutes, c) for c in cuts), key=len)
            assert stored(path, node) == kept
            assert verified.chains.get(node, 0) + verified.pruned.get(node, 0) == len(minutes)


# SQL that changes a record whatever it holds (every value differs from the original).
tamperings = st.sampled_from(
    [
        "outcome = outcome || '~'",
        "kind = kind || '~'",
        "sender = COALESCE(sender, '') || '~'",
        "message_id = COALESCE(message_id, '') || '~'",
        "data = '{\"tampered\":1}'",
        "ts = '2025-12-31T23:59:59.000000Z'",
        "prev_hash = (CASE WHEN prev_hash LIKE 'f%' THEN 'e' ELSE 'f' END) || substr(prev_hash, 2)",
        "hash = (CASE WHEN hash LIKE 'e%' THEN 'f' ELSE 'e' END) || substr(hash, 2)",
        "seq = 10000",
        "delete",
        "forge",  # replaced by a record sealed anew (its own hash right) on another prev_hash
    ]
)


@SETTINGS
@given(
    minutes=st.lists(st.integers(min_value=0, max_value=60), min_size=2, max_size=25),
    cut=st.integers(min_value=0, max_value=60),
    pick=st.integers(min_value=0, max_value=1_000),
    tampering=tamperings,
)
def test_any_change_to_a_kept_record_is_detected_after_a_prune(
    minutes: list[int], cut: int, pick: int, tampering: str
) -> None:
    kept = expected_kept(minutes, cut)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.db"
        build(path, [minutes])
        prune_url(str(path), before=T0 + timedelta(minutes=cut), node="admin", now=NOW)
        assert verify_url(str(path)).ok
        # A kept record of the pruned chain, or (nothing kept) of the admin chain.
        node, seqs = ("n0", kept) if kept else ("admin", stored(path, "admin"))
        target = seqs[pick % len(seqs)]
        con = sqlite3.connect(path)
        select = "SELECT * FROM audit_records WHERE node = ? AND seq = ?"
        original = con.execute(select, (node, target)).fetchone()
        with con:
            if tampering == "delete":
                con.execute("DELETE FROM audit_records WHERE node = ? AND seq = ?", (node, target))
            elif tampering == "forge":
                forged = chain_row(node, target, "1" * 64, event(999))
                assignments = ", ".join(f"{name} = :{name}" for name in forged)
                con.execute(
                    f"UPDATE audit_records SET {assignments} WHERE node = :node AND seq = :seq",
                    forged,
                )
            else:
                con.execute(
                    f"UPDATE audit_records SET {tampering} WHERE node = ? AND seq = ?",
                    (node, target),
                )
        changed = con.execute("SELECT * FROM audit_records WHERE id = ?", (original[0],))
        assert changed.fetchone() != original  # the tampering really changed the record
        con.close()
        report = verify_url(str(path))
        assert not report.ok
        assert (report.node, report.seq) == (node, target), report.problem


def seal(n: int) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS_HASH
    for i in range(n):
        row = chain_row("a", i + 1, prev, event(i))
        prev = row["hash"]
        rows.append(tuple(row[name] for name in RECORD_COLUMNS))
    return rows


values = st.none() | st.integers(-5, 5) | st.text(max_size=6) | st.just('{"i":1}')


@SETTINGS
@given(
    n=st.integers(min_value=1, max_value=12),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["set", "delete", "swap", "forge"]),
            st.integers(0, 100),
            st.sampled_from(RECORD_COLUMNS),
            values,
        ),
        max_size=3,
    ),
    with_head=st.booleans(),
)
def test_the_fast_row_path_decides_as_the_record_path(
    n: int, edits: list[tuple[str, int, str, Any]], with_head: bool
) -> None:
    rows = seal(n)
    heads = {"a": (rows[-1][1], rows[-1][13])} if with_head else None
    for action, at, column, value in edits:
        if not rows:
            break
        index = at % len(rows)
        if action == "delete":
            del rows[index]
        elif action == "forge":  # sealed anew at the same seq, on another prev_hash
            row = chain_row("a", rows[index][1], "1" * 64, event(99))
            rows[index] = tuple(row[name] for name in RECORD_COLUMNS)
        elif action == "swap":
            other = (index + 1) % len(rows)
            rows[index], rows[other] = rows[other], rows[index]
        else:
            position = RECORD_COLUMNS.index(column)
            rows[index] = (*rows[index][:position], value, *rows[index][position + 1 :])
    fast = ChainVerifier(heads)
    fast.add_rows(rows)
    slow = ChainVerifier(heads)
    for row in rows:
        if not slow.add_row(row):
            break
    assert fast.finish() == slow.finish()


@settings(max_examples=20, deadline=None)
@given(
    chains=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=3),
    cut=st.none() | st.integers(min_value=0, max_value=30),
    pick=st.integers(min_value=0, max_value=1_000),
    tampering=st.none() | tamperings,
    workers=st.integers(min_value=2, max_value=5),
)
def test_verifying_in_parallel_never_says_intact_when_one_process_says_broken(
    chains: list[int], cut: int | None, pick: int, tampering: str | None, workers: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.db"
        build(path, [list(range(n)) for n in chains])
        if cut is not None:
            prune_url(str(path), before=T0 + timedelta(minutes=cut), node="admin", now=NOW)
        if tampering is not None:
            con = sqlite3.connect(path)
            rows = con.execute("SELECT node, seq FROM audit_records").fetchall()
            if rows:
                node, seq = sorted(rows)[pick % len(rows)]
                with con:
                    if tampering == "delete":
                        con.execute(
                            "DELETE FROM audit_records WHERE node = ? AND seq = ?", (node, seq)
                        )
                    elif tampering != "forge":
                        con.execute(
                            f"UPDATE audit_records SET {tampering} WHERE node = ? AND seq = ?",
                            (node, seq),
                        )
            con.close()
        url = normalize_url(str(path))
        engine = reading_engine(url)
        try:
            with snapshot(engine) as (conn, _):
                heads, checkpoints = read_heads(conn, None), read_checkpoints(conn, None)
        finally:
            engine.dispose()
        serial = verify_url(str(path), workers=1)
        fast = verify_parallel(url, heads, checkpoints, workers=workers, page_size=5)
        assert fast is None or (serial.ok and fast == serial)
        if tampering is None:
            assert serial.ok
