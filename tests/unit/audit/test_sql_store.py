"""SqlAuditStore on SQLite files: writer thread and process, durability, restarts, failures,
tampering.

The store's behaviour tests run once per writer mode (``writer`` fixture); tests of reading and
tampering, which do not depend on where the writer runs, only with the thread.
"""

from __future__ import annotations

import asyncio
import doctest
import itertools
import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import govbus.audit.database
import govbus.audit.sql
from govbus.audit import AuditStore, SqlAuditStore, count_url, iter_records_url, verify_url
from govbus.audit.base import GENESIS_HASH, AuditEvent
from govbus.audit.chain import default_node_name, record_fields, record_hash
from govbus.audit.database import SCHEMA_VERSION, normalize_url
from govbus.errors import AuditError, AuditUnavailableError, ChainBrokenError
from tests.support import migrate_at_once

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
SLOW = 30.0  # a flush_interval so long that the writer only moves when something wakes it

MakeStore = Callable[..., SqlAuditStore]


def event(i: int, **data: object) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(milliseconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        correlation_id="c-1",
        msg_type="advice.request",
        sender="planner",
        recipient="advisor",
        policy_sha256="ab" * 32,
        data={"i": i, **data},
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture(params=["thread", "process"])
def writer(request: pytest.FixtureRequest) -> str:
    """Where the store under test seals and inserts."""
    return str(request.param)


THREAD_ONLY = pytest.mark.parametrize("writer", ["thread"])
PROCESS_ONLY = pytest.mark.parametrize("writer", ["process"])


@pytest.fixture
async def make_store(db: Path, writer: str) -> AsyncIterator[MakeStore]:
    """Build stores (on ``db`` unless a URL is given) and close every one after the test."""
    stores: list[SqlAuditStore] = []

    def make(url: str | None = None, **kwargs: Any) -> SqlAuditStore:
        kwargs.setdefault("node", "host-1")
        kwargs.setdefault("writer", writer)
        store = SqlAuditStore(url or str(db), **kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


def rows(db: Path, query: str = "SELECT node, seq FROM audit_records ORDER BY id") -> list[Any]:
    with sqlite3.connect(db) as con:
        return con.execute(query).fetchall()


def count(db: Path) -> int:
    return int(rows(db, "SELECT count(*) FROM audit_records")[0][0])


def tamper(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    with con:
        for statement in statements:
            con.execute(statement)
    con.close()


@contextmanager
def locked(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection: to the store, the database is down."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


def exists(path: Path) -> bool:
    return path.exists()


def writer_threads(node: str) -> list[threading.Thread]:
    """The store's threads: the writer, or the feeder and reader of a writer process."""
    names = {f"govbus-audit-{role}[{node}]" for role in ("writer", "reader")}
    return [t for t in threading.enumerate() if t.name in names]


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def write_n(store: SqlAuditStore, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        store.submit(event(i))
    await store.flush()


# -- lifecycle ------------------------------------------------------------------------------


async def test_start_creates_the_database_and_schema_version(
    make_store: MakeStore, db: Path
) -> None:
    store: AuditStore = make_store()
    await store.start()
    assert exists(db)
    assert rows(db, "SELECT version FROM audit_schema_version") == [(SCHEMA_VERSION,)]
    assert rows(db, "PRAGMA journal_mode") == [("wal",)]


async def test_default_node_is_host_and_pid(db: Path) -> None:
    assert SqlAuditStore(str(db)).node == default_node_name()


async def test_submit_before_start_is_refused(make_store: MakeStore) -> None:
    with pytest.raises(AuditError, match="not started"):
        make_store().submit(event(0))


async def test_close_is_idempotent_and_stops_the_writer(make_store: MakeStore) -> None:
    store = make_store(node="closing")
    await store.start()
    assert len(writer_threads("closing")) == (1 if store.writer == "thread" else 2)
    await store.close()
    await store.close()
    assert writer_threads("closing") == []
    with pytest.raises(AuditError, match="closed"):
        store.submit(event(0))
    with pytest.raises(AuditError, match="closed"):
        await store.write(event(0))
    with pytest.raises(AuditError, match="closed"):
        await store.start()


async def test_close_flushes_submitted_events(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW)
    await store.start()
    for i in range(5):
        store.submit(event(i))
    await store.close()
    assert count(db) == 5


async def test_an_unwritable_path_gives_an_error_naming_it(make_store: MakeStore) -> None:
    store = make_store("/proc/govbus-test/audit.db")
    with pytest.raises(AuditError, match="cannot create audit database at /proc/govbus-test/audit"):
        await store.start()


async def test_a_file_in_place_of_the_directory_gives_an_error_naming_it(
    make_store: MakeStore, tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("not a directory")
    path = tmp_path / "taken" / "sub" / "audit.db"
    with pytest.raises(AuditError, match=f"cannot create audit database at {path}"):
        await make_store(str(path)).start()


@THREAD_ONLY
async def test_relative_sqlite_urls_and_bare_paths_resolve_against_the_cwd(
    make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    by_url = make_store("sqlite:///rel/dir/audit.db")
    by_path = make_store("plain/audit.db")
    monkeypatch.chdir("/")  # the store resolved its path when it was built
    await by_url.start()
    await by_path.start()
    assert exists(tmp_path / "rel" / "dir" / "audit.db")
    assert exists(tmp_path / "plain" / "audit.db")


def test_url_normalization() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("/abs/a.db").database == "/abs/a.db"
    for memory in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(AuditError, match="in-memory"):
            normalize_url(memory)
    with pytest.raises(AuditError, match="cannot parse"):
        normalize_url("not a url://x")


async def test_a_newer_schema_version_is_refused(make_store: MakeStore, db: Path) -> None:
    await make_store().start()
    tamper(db, "UPDATE audit_schema_version SET version = 99")
    with pytest.raises(AuditError, match="schema version 99, newer"):
        await make_store(node="other").start()


# -- durability -----------------------------------------------------------------------------


async def test_submit_returns_before_the_commit(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW)
    await store.start()
    store.submit(event(0))
    assert count(db) == 0
    assert store.pending == 1


async def test_write_returns_after_its_commit(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW)
    await store.start()
    store.submit(event(0))
    await store.write(event(1))
    assert rows(db) == [("host-1", 1), ("host-1", 2)]


async def test_batch_mode_commits_within_the_flush_interval(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store(flush_interval=0.05)
    await store.start()
    store.submit(event(0))
    await wait_until(lambda: count(db) == 1)


async def test_a_full_batch_wakes_the_writer(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW, batch_size=10)
    await store.start()
    for i in range(10):
        store.submit(event(i))
    await wait_until(lambda: count(db) == 10)


async def test_flush_waits_for_everything_submitted(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW, batch_size=7)
    await store.start()
    for i in range(50):
        store.submit(event(i))
    await store.flush()
    assert count(db) == 50
    assert store.batches >= 8  # at most batch_size events per transaction


async def test_concurrent_writes_share_commits(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW)
    await store.start()
    await asyncio.gather(*(store.write(event(i)) for i in range(200)))
    assert count(db) == 200
    assert store.batches < 100


async def test_a_full_queue_fails_closed(make_store: MakeStore, db: Path) -> None:
    store = make_store(flush_interval=SLOW, max_queue=5)
    await store.start()
    for i in range(5):
        store.submit(event(i))
    with pytest.raises(AuditUnavailableError, match="queue full"):
        store.submit(event(5))
    await store.close()
    assert count(db) == 5


# -- the chain ------------------------------------------------------------------------------


async def test_records_are_chained_in_submit_order(make_store: MakeStore) -> None:
    store = make_store(batch_size=3)
    await store.start()
    await write_n(store, 8)
    records = [r async for r in store.records()]
    assert [r.seq for r in records] == list(range(1, 9))
    assert [r.data["i"] for r in records] == list(range(8))
    assert records[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash
    for record in records:
        assert record.hash == record_hash(record.prev_hash, record_fields(record))
    assert records[0].ts == T0
    assert (await store.verify()).ok


async def test_a_restart_continues_the_same_chain(
    make_store: MakeStore, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_store()
    await first.start()
    await write_n(first, 3)
    await first.close()
    second = make_store()
    await second.start()
    await write_n(second, 2, start=3)
    records = list(iter_records_url(str(db)))
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[3].prev_hash == records[2].hash
    assert rows(db, "SELECT node, seq, hash FROM audit_heads") == [("host-1", 5, records[4].hash)]
    assert verify_url(str(db)).ok
    assert "re-chaining" not in caplog.text  # resumed from the head, not by tripping over it


async def test_a_second_writer_on_the_same_chain_is_re_chained_after_it(
    make_store: MakeStore, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = make_store(node="shared"), make_store(node="shared")
    await a.start()
    await b.start()  # both start before anything is written: both think the chain is empty
    await a.write(event(0))
    await a.write(event(1))
    with caplog.at_level(logging.WARNING, logger="govbus.audit"):
        await b.write(event(2))
    assert "re-chaining a batch of 1 records" in caplog.text
    assert rows(db) == [("shared", 1), ("shared", 2), ("shared", 3)]
    report = verify_url(str(db))
    assert report.ok
    assert report.chains == {"shared": 3}


async def test_awkward_values_round_trip_and_verify(make_store: MakeStore) -> None:
    data = {
        "float": 0.1,
        "big": 2**63 - 1,
        "neg": -0.0,
        "text": 'é ☃ \u0000 "quoted"',
        "nested": {"b": [1, None, True], "a": {}},
        "nan": float("nan"),
    }
    mid = uuid.uuid4()
    store = make_store()
    await store.start()
    await store.write(AuditEvent(kind="admin", ts=T0, outcome="ok", message_id=mid, data=data))  # type: ignore[arg-type]
    (record,) = [r async for r in store.records()]
    assert record.message_id == str(mid)
    assert record.data == {**data, "nan": None}
    assert (await store.verify()).ok


# -- reading --------------------------------------------------------------------------------


@THREAD_ONLY
async def test_reading_pages_through_chains_in_node_order(make_store: MakeStore, db: Path) -> None:
    for node in ("b-node", "a-node"):
        store = make_store(node=node)
        await store.start()
        await write_n(store, 5)
    reader = make_store(node="reader", page_size=3)  # never started: read-only
    got = [(r.node, r.seq) async for r in reader.records()]
    assert got == [("a-node", s) for s in range(1, 6)] + [("b-node", s) for s in range(1, 6)]
    assert [r.seq async for r in reader.records(node="b-node")] == [1, 2, 3, 4, 5]
    report = await reader.verify()
    assert report.ok
    assert report.chains == {"a-node": 5, "b-node": 5}
    assert count_url(str(db)) == 10
    assert count_url(f"sqlite:///{db}", node="a-node") == 5
    assert verify_url(str(db), node="a-node", page_size=2).chains == {"a-node": 5}
    assert writer_threads("reader") == []


async def test_records_stay_readable_after_close(make_store: MakeStore) -> None:
    store = make_store()
    await store.start()
    await write_n(store, 3)
    await store.close()
    assert [r.seq async for r in store.records()] == [1, 2, 3]
    assert (await store.verify()).records == 3


def test_reading_a_missing_database_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "audit.db"
    with pytest.raises(AuditError, match=f"no audit database at {path}"):
        verify_url(str(path))
    assert not path.parent.exists()


def test_reading_a_database_without_audit_tables_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    with pytest.raises(AuditError, match="no audit records"):
        verify_url(str(path))
    with pytest.raises(AuditError, match="no audit records"):
        count_url(str(path))


# -- failures -------------------------------------------------------------------------------


async def test_write_fails_after_write_timeout_when_the_database_is_down_and_nothing_is_lost(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store(f"sqlite:///{db}?timeout=0.02", write_timeout=0.3)
    await store.start()
    await store.write(event(0))
    with locked(db):
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError, match=r"committed nothing for 0\.3s"):
            await store.write(event(1))
        assert time.monotonic() - started < 3
        store.submit(event(2))
    await store.flush()
    assert [r.data["i"] async for r in store.records()] == [0, 1, 2]
    assert (await store.verify()).ok


async def test_close_with_the_database_down_says_how_many_events_were_lost(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store(f"sqlite:///{db}?timeout=0.02", write_timeout=0.2, node="down")
    await store.start()
    with locked(db):
        for i in range(3):
            store.submit(event(i))
        with pytest.raises(AuditUnavailableError, match="3 events not committed"):
            await store.close()
        assert writer_threads("down") == []


async def test_the_spool_seam_is_offered_each_persistently_failing_batch(
    db: Path,
) -> None:
    offered: list[list[int]] = []

    class Recording(SqlAuditStore):
        def _on_persistent_failure(self, rows: list[dict[str, Any]], error: BaseException) -> bool:
            offered.append([row["seq"] for row in rows])
            return False  # no spool: keep retrying the database

    store = Recording(f"sqlite:///{db}?timeout=0.02", node="seam", write_timeout=0.1)
    await store.start()
    await store.write(event(0))
    with locked(db):
        store.submit(event(1))
        store.submit(event(2))
        await wait_until(lambda: len(offered) > 0)
    await store.flush()
    await store.close()
    assert offered[0] == [2, 3]
    assert count(db) == 3


# -- tampering (edited with plain sqlite3, as an attacker with file access would) -----------


@pytest.mark.parametrize(
    ("statements", "seq", "problem"),
    [
        (["UPDATE audit_records SET outcome = 'deny' WHERE seq = 3"], 3, "hash does not match"),
        (["UPDATE audit_records SET data = '{\"i\":99}' WHERE seq = 4"], 4, "hash does not match"),
        (["UPDATE audit_records SET ts = 'yesterday' WHERE seq = 6"], 6, "cannot be read"),
        (["DELETE FROM audit_records WHERE seq = 5"], 5, "missing (deleted or reordered?)"),
        (["DELETE FROM audit_records WHERE seq >= 9"], 9, "missing (tail deleted?)"),
        (
            [
                "UPDATE audit_records SET seq = -1 WHERE seq = 3",
                "UPDATE audit_records SET seq = 3 WHERE seq = 7",
                "UPDATE audit_records SET seq = 7 WHERE seq = -1",
            ],
            3,
            "hash does not match",
        ),
        (["DELETE FROM audit_heads"], None, "no head"),
        (
            [f"UPDATE audit_heads SET hash = '{'f' * 64}'"],
            10,
            "differs from the chain head",
        ),
    ],
    ids=[
        "changed-field",
        "changed-data",
        "unreadable-ts",
        "deleted-middle",
        "deleted-tail",
        "swapped-seq",
        "deleted-head",
        "changed-head",
    ],
)
@THREAD_ONLY
async def test_tampering_is_detected_and_the_record_named(
    make_store: MakeStore, db: Path, statements: list[str], seq: int | None, problem: str
) -> None:
    store = make_store()
    await store.start()
    await write_n(store, 10)
    assert (await store.verify()).ok
    tamper(db, *statements)
    for report in (verify_url(str(db)), await store.verify()):
        assert not report.ok
        assert report.node == "host-1"
        assert report.seq == seq
        assert report.problem is not None
        assert problem in report.problem
        if seq is not None:
            assert report.problem.startswith(f"record {seq} of chain 'host-1'")


async def test_a_chain_whose_head_was_deleted_is_not_extended(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store()
    await store.start()
    await write_n(store, 3)
    await store.close()
    tamper(db, "DELETE FROM audit_heads", "DELETE FROM audit_records WHERE seq = 3")
    with pytest.raises(ChainBrokenError, match="records up to 2 but no head"):
        await make_store().start()


@pytest.mark.parametrize("module", [govbus.audit.sql, govbus.audit.database])
def test_docstring_examples_run(module: object) -> None:
    results = doctest.testmod(module)  # type: ignore[arg-type]
    assert results.attempted > 0
    assert results.failed == 0


# -- the writer process ---------------------------------------------------------------------


def writer_processes(node: str) -> list[int]:
    """Pids of this test process's live writer children for ``node``.

    Only our own children count: other test runs on the machine have writers too.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state, ppid = (entry / "stat").read_text().split(")")[-1].split()[:2]
        except OSError:
            continue
        if (
            int(ppid) == os.getpid()
            and state != "Z"
            and b"govbus.audit.process" in argv
            and node.encode() in argv
        ):
            found.append(int(entry.name))
    return found


@PROCESS_ONLY
async def test_the_writer_process_is_another_process_and_is_gone_after_close(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store(node="proc")
    assert store.writer_pid is None
    await store.start()
    pid = store.writer_pid
    assert pid is not None
    assert pid != os.getpid()
    assert writer_processes("proc") == [pid]
    await write_n(store, 3)
    assert count(db) == 3
    await store.close()
    assert store.writer_pid is None
    assert writer_processes("proc") == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped, not a zombie we forgot


@THREAD_ONLY
async def test_thread_mode_has_no_writer_pid(make_store: MakeStore) -> None:
    store = make_store()
    await store.start()
    assert store.writer_pid is None


@PROCESS_ONLY
async def test_a_killed_writer_process_fails_waiters_and_submit_closed(
    make_store: MakeStore, db: Path
) -> None:
    store = make_store(f"sqlite:///{db}?timeout=0.02", write_timeout=30.0)
    await store.start()
    await write_n(store, 3)
    pid = store.writer_pid
    assert pid is not None
    with locked(db):  # the next batch stays in flight in the child, retrying
        pending = asyncio.ensure_future(store.write(event(3)))
        await wait_until(lambda: store.pending == 0)
        await asyncio.sleep(0.1)
        assert not pending.done()
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError, match=r"exited with code -9; 1 events not"):
            await asyncio.wait_for(pending, 10)
        assert time.monotonic() - started < 5  # not write_timeout: the death is noticed at once
    with pytest.raises(AuditUnavailableError, match="exited with code -9"):
        store.submit(event(4))
    with pytest.raises(AuditUnavailableError, match="exited with code -9"):
        await store.write(event(4))
    with pytest.raises(AuditUnavailableError, match="exited with code -9"):
        await store.flush()
    report = await store.verify()
    assert report.ok
    assert report.records == 3
    with pytest.raises(AuditUnavailableError, match="closed with 1 events not committed"):
        await store.close()
    assert writer_processes("host-1") == []
    assert writer_threads("host-1") == []


@PROCESS_ONLY
async def test_a_startup_error_in_the_child_leaves_no_process_behind(
    make_store: MakeStore,
) -> None:
    store = make_store("/proc/govbus-test/audit.db", node="bad")
    with pytest.raises(AuditError, match="cannot create audit database at /proc/govbus-test/audit"):
        await store.start()
    assert writer_processes("bad") == []
    assert store.writer_pid is None


@PROCESS_ONLY
async def test_a_chain_continues_across_thread_and_process_writers(
    make_store: MakeStore, db: Path
) -> None:
    for i, writer in enumerate(["thread", "process", "thread"]):
        store = make_store(writer=writer)
        await store.start()
        await write_n(store, 2, start=2 * i)
        await store.close()
    assert [r.data["i"] for r in iter_records_url(str(db))] == list(range(6))
    assert verify_url(str(db)).chains == {"host-1": 6}


async def test_the_default_node_is_named_after_the_parent_process(db: Path) -> None:
    store = SqlAuditStore(str(db))
    await store.start()
    try:
        await store.write(event(0))
    finally:
        await store.close()
    assert rows(db, "SELECT node FROM audit_records") == [(default_node_name(),)]


class _Local:
    def __str__(self) -> str:
        return "local-value"


@PROCESS_ONLY
async def test_values_that_do_not_pickle_are_recorded_as_the_thread_records_them(
    make_store: MakeStore,
) -> None:
    odd = AuditEvent(
        kind="admin",
        ts=T0,
        outcome="ok",
        sender=_Local(),  # type: ignore[arg-type]
        data={"f": lambda: None, "lock": threading.Lock()},
    )
    got = {}
    for writer in ("thread", "process"):
        store = make_store(writer=writer, node=writer)
        await store.start()
        await store.write(odd)
        await store.write(event(1, where=_Local()))  # pickles, but only by reference
        got[writer] = [(r.sender, r.data) async for r in store.records(node=writer)]
        assert (await store.verify()).ok
    assert got["process"] == got["thread"]
    assert got["thread"][0][0] == "local-value"
    assert "not JSON-serializable" in got["thread"][0][1]["govbus_audit_note_data"]


def test_a_spool_subclass_is_refused_in_process_mode(db: Path) -> None:
    class Spooling(SqlAuditStore):
        def _on_persistent_failure(self, rows: list[dict[str, Any]], error: BaseException) -> bool:
            return True

    with pytest.raises(ValueError, match="needs writer='thread'"):
        Spooling(str(db), writer="process")
    Spooling(str(db), writer="thread")


FORGETFUL_SCRIPT = """
import asyncio
from datetime import UTC, datetime
from govbus.audit import AuditEvent, SqlAuditStore

async def main():
    store = SqlAuditStore({url!r}, writer="process")
    await store.start()
    for i in range(5):
        await store.write(AuditEvent("admin", datetime.now(UTC), "x", data={{"i": i}}))
    print(store.writer_pid)

asyncio.run(main())  # no close()
"""


def test_a_forgotten_close_still_stops_the_writer_gracefully(tmp_path: Path) -> None:
    """At exit the child is asked to close (not killed): it exits on its own, nothing is lost,
    and nothing is left running."""
    import subprocess
    import sys

    db = tmp_path / "forgot.db"
    script = tmp_path / "forgetful.py"
    script.write_text(FORGETFUL_SCRIPT.format(url=f"sqlite:///{db}"))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "exited with code" not in done.stderr  # not terminated or killed
    pid = int(done.stdout.strip())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    report = verify_url(f"sqlite:///{db}")
    assert (report.ok, report.records) == (True, 5)


def test_processes_starting_together_on_a_fresh_sqlite_file_create_the_schema_once(
    tmp_path: Path,
) -> None:
    """Workers started at once race to create the tables; the loser must wait, not fail."""
    errors, versions = migrate_at_once(f"sqlite:///{tmp_path}/fresh.db")
    assert not errors, errors
    assert versions == [(govbus.audit.database.SCHEMA_VERSION,)]
