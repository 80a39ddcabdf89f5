"""Verifying on several cores: the same answer as one process for an intact store, and never an
"intact" for a store one process finds broken (the parallel path then gives way)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import govbus.audit.parallel as parallel
from govbus.audit import verify_url
from govbus.audit.database import (
    normalize_url,
    read_checkpoints,
    read_heads,
    reading_engine,
    snapshot,
)
from govbus.audit.parallel import plan_ranges, verify_parallel
from govbus.audit.prune import prune_url

from .chains import HOUR, T0, sql, write_chain


def run_parallel(db: Path, workers: int = 3, page_size: int = 7) -> Any:
    url = normalize_url(str(db))
    engine = reading_engine(url)
    try:
        with snapshot(engine) as (conn, _):
            heads, checkpoints = read_heads(conn, None), read_checkpoints(conn, None)
    finally:
        engine.dispose()
    return verify_parallel(url, heads, checkpoints, workers=workers, page_size=page_size)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 40)
    write_chain(path, "b", 3)
    write_chain(path, "c", 25)
    return path


def test_an_intact_store_gets_the_serial_answer(db: Path) -> None:
    report = run_parallel(db)
    assert report is not None
    assert report == verify_url(str(db), workers=1)
    assert report.chains == {"a": 40, "b": 3, "c": 25}


def test_a_pruned_store_gets_the_serial_answer(db: Path) -> None:
    prune_url(str(db), before=T0 + 10 * HOUR, node="admin", now=T0 + 100 * HOUR)
    report = run_parallel(db, workers=4)
    assert report is not None and report.ok
    assert report == verify_url(str(db), workers=1)
    assert report.pruned == {"a": 10, "b": 3, "c": 10}


@pytest.mark.parametrize(
    "statements",
    [
        ["UPDATE audit_records SET outcome = 'x' WHERE node = 'a' AND seq = 20"],
        ["DELETE FROM audit_records WHERE node = 'a' AND seq = 23"],  # near a range boundary
        ["DELETE FROM audit_records WHERE node = 'c' AND seq = 25"],
        ["DELETE FROM audit_heads WHERE node = 'b'"],
        ["UPDATE audit_heads SET hash = 'f' WHERE node = 'a'"],
        [
            "UPDATE audit_records SET seq = -1 WHERE node = 'a' AND seq = 21",
            "UPDATE audit_records SET seq = 21 WHERE node = 'a' AND seq = 22",
            "UPDATE audit_records SET seq = 22 WHERE node = 'a' AND seq = -1",
        ],
    ],
    ids=["changed", "deleted-at-boundary", "deleted-tail", "no-head", "head-changed", "swapped"],
)
def test_a_broken_store_is_left_to_the_serial_verify(db: Path, statements: list[str]) -> None:
    sql(db, *statements)
    assert run_parallel(db) is None
    serial = verify_url(str(db), workers=1)
    assert not serial.ok
    assert verify_url(str(db), workers=3) == serial  # below the size threshold: serial anyway


def test_a_checkpoint_whose_records_are_still_there_is_left_to_the_serial_verify(
    db: Path,
) -> None:
    prune_url(str(db), before=T0 + 5 * HOUR, node="admin", now=T0 + 100 * HOUR)
    sql(db, "UPDATE audit_checkpoints SET seq = 2 WHERE node = 'c'")  # records 3.. still there
    assert run_parallel(db) is None


def test_a_worker_that_cannot_read_gives_way_and_creates_nothing(db: Path, tmp_path: Path) -> None:
    url = normalize_url(str(db))
    engine = reading_engine(url)
    with snapshot(engine) as (conn, _):
        heads, checkpoints = read_heads(conn, None), read_checkpoints(conn, None)
    engine.dispose()
    missing = tmp_path / "nothing-here.db"
    assert verify_parallel(normalize_url(str(missing)), heads, checkpoints, workers=2,
                           page_size=10) is None  # fmt: skip
    assert not missing.exists()


def test_large_stores_use_the_workers_and_report_progress(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = parallel.verify_parallel

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    monkeypatch.setattr(parallel, "verify_parallel", spy)
    seen: list[tuple[int, int]] = []
    report = verify_url(str(db), workers=2, progress=lambda done, total: seen.append((done, total)))
    assert calls == [2]
    assert report.ok and report.records == 68
    assert seen[-1] == (68, 68)
    assert verify_url(str(db), workers=1).ok and calls == [2]  # workers=1: never parallel
    assert verify_url(str(db), node="a", workers=2).ok and calls == [2]  # one chain: serial


def test_a_url_with_options_is_verified_serially(db: Path) -> None:
    url = normalize_url(f"sqlite:///{db}?timeout=5")
    assert verify_parallel(url, {"a": (40, "x")}, None, workers=2, page_size=10) is None


def test_a_writer_appending_meanwhile_does_not_break_the_parallel_answer(db: Path) -> None:
    url = normalize_url(str(db))
    engine = reading_engine(url)
    with snapshot(engine) as (conn, _):
        heads, checkpoints = read_heads(conn, None), read_checkpoints(conn, None)
    engine.dispose()
    write_chain(db, "a", 5)  # after the heads were read: chains run past them
    report = verify_parallel(url, heads, checkpoints, workers=3, page_size=7)
    assert report is not None and report.ok
    assert report.chains["a"] == 45


@pytest.mark.parametrize(
    ("sizes", "parts", "expected"),
    [
        ([], 3, [(None, None)]),
        ([("a", 1, 10)], 1, [(None, None)]),
        ([("a", 1, 0), ("b", 1, 0)], 2, [(None, None)]),
        ([("a", 1, 3)], 5, [(None, ("a", 1)), (("a", 1), ("a", 2)), (("a", 2), ("a", 3)),
                            (("a", 3), None)]),
        ([("a", 11, 10), ("b", 1, 10)], 2, [(None, ("b", 1)), (("b", 1), None)]),
        ([("a", 11, 10), ("b", 1, 10)], 4, [(None, ("a", 16)), (("a", 16), ("b", 1)),
                                             (("b", 1), ("b", 6)), (("b", 6), None)]),
    ],
)  # fmt: skip
def test_ranges_cover_every_key_in_about_equal_parts(
    sizes: list[tuple[str, int, int]], parts: int, expected: list[Any]
) -> None:
    assert plan_ranges(sizes, parts) == expected


def test_the_worker_does_not_import_the_rest_of_govbus() -> None:
    """A worker starts in well under a second: it must not pull in the orchestrator."""
    import subprocess
    import sys

    audit = Path(parallel.__file__).resolve().parent
    probe = parallel._BOOT.replace(
        "from govbus.audit.parallel import main\nsys.exit(main())",
        "import govbus.audit.parallel\nprint(sorted(m for m in sys.modules if m.startswith("
        "('govbus', 'sqlalchemy', 'pydantic'))))",
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(audit.parent), str(audit)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = ast.literal_eval(done.stdout)
    assert "govbus.audit.chain" in loaded
    assert not [m for m in loaded if m.startswith(("sqlalchemy", "pydantic", "govbus.orch"))]


def test_a_chain_rewritten_from_a_range_boundary_is_caught_where_the_ranges_join(
    db: Path,
) -> None:
    """Chain 'a' sealed anew from record 23 (where the second range starts) to its head, head
    moved: each range is consistent in itself; only the link between the ranges is broken."""
    from govbus.audit.chain import RECORD_COLUMNS, chain_row

    from .chains import event

    assert plan_ranges([("a", 1, 40), ("b", 1, 3), ("c", 1, 25)], 3)[1][0] == ("a", 23)
    prev = "1" * 64
    for seq in range(23, 41):
        row = chain_row("a", seq, prev, event(1000 + seq))
        prev = row["hash"]
        assignments = ", ".join(f"{name} = :{name}" for name in RECORD_COLUMNS)
        sql(db, f"UPDATE audit_records SET {assignments} WHERE node = :node AND seq = :seq",
            params=row)  # fmt: skip
    sql(db, "UPDATE audit_heads SET hash = ? WHERE node = 'a'", params=[prev])
    assert run_parallel(db) is None
    serial = verify_url(str(db), workers=1)
    assert (serial.ok, serial.node, serial.seq) == (False, "a", 23)


def test_when_workers_cannot_start_it_gives_way(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_interpreter(*args: Any, **kwargs: Any) -> Any:
        raise OSError("no such file: python")

    monkeypatch.setattr(parallel.subprocess, "Popen", no_interpreter)
    assert run_parallel(db) is None
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    assert verify_url(str(db), workers=2).ok  # serially
