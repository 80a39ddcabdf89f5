"""Verifying a large SQLite audit database on several cores.

``verify_url`` calls :func:`verify_parallel` for a SQLite file of many records. The chains, in
(node, seq) order, are cut into contiguous ranges of about equal size (sizes estimated from the
heads and checkpoints, no extra scan); a worker process per range (a fresh interpreter started
with ``subprocess``, so no caller needs a ``__main__`` guard) verifies every row of its range
with the same :class:`~govbus.audit.chain.ChainVerifier` fast path, and reports per chain where
its part starts and ends. This process then joins the parts:
each must continue its chain exactly where the previous part ended (seq and hash), every chain
must start on the genesis hash or its checkpoint, reach its head, and the checkpoints must be
the attested ones (:meth:`ChainVerifier.finish`).

A worker is cheap to start: it reads the range with ``sqlite3`` directly (the SQL is compiled
here) and imports only :mod:`govbus.audit.chain`, under bare ``govbus`` and ``govbus.audit``
package entries (``_BOOT``), so it skips the ~0.8 s of CPU that importing ``govbus`` (the
orchestrator, pydantic, SQLAlchemy) costs. The audit layer imports nothing above it (the
architecture test holds it to that), which is what makes this safe.

Only a plainly intact store is reported from here. Anything else (a worker finding a problem, a
part that does not join, a chain that starts oddly, a worker that fails) returns None, and the
caller verifies serially in one snapshot, which names the first problem exactly. Each worker
reads its range in a snapshot of its own; a writer appending meanwhile only extends chains past
their heads (allowed), and a prune deleting meanwhile makes a part not join (so: serial).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from govbus.audit.base import AuditCheckpoint, VerifyReport
from govbus.audit.chain import ChainVerifier

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["PARALLEL_MIN_RECORDS", "plan_ranges", "verify_parallel"]

#: Below this many records (estimated) one process is as fast: starting workers costs ~0.5 s.
PARALLEL_MIN_RECORDS: Final = 200_000
_MAX_WORKERS: Final = 8

Key = tuple[str, int]
Range = tuple[Key | None, Key | None]

#: How a worker starts: bare package entries for govbus and govbus.audit (their __init__ would
#: import the whole library), then only the modules it needs.
_BOOT: Final = """\
import sys, types
for name, path in (("govbus", sys.argv[1]), ("govbus.audit", sys.argv[2])):
    package = types.ModuleType(name)
    package.__path__ = [path]
    sys.modules[name] = package
from govbus.audit.parallel import main
sys.exit(main())
"""


def default_workers() -> int:
    """How many workers a large verify uses: the cores this process may run on, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS))


def plan_ranges(sizes: Sequence[tuple[str, int, int]], parts: int) -> list[Range]:
    """Cut chains into ``parts`` contiguous (node, seq) ranges of about equal size.

    Args:
        sizes: per chain in node order, ``(node, first_seq, records)``: where its stored records
            are expected to start (after its checkpoint) and how many.
        parts: how many ranges.

    Returns:
        ``[(lo, hi), ...]`` covering every key: ``lo`` inclusive, ``hi`` exclusive, None for
        open ends.

    Example:
        >>> plan_ranges([("a", 1, 100), ("b", 1, 100)], 2)
        [(None, ('b', 1)), (('b', 1), None)]
        >>> plan_ranges([("a", 1, 100)], 2)
        [(None, ('a', 51)), (('a', 51), None)]
    """
    total = sum(records for _, _, records in sizes)
    if parts < 2 or total == 0:
        return [(None, None)]
    cuts: list[Key] = []
    done = 0
    target = 1
    for node, first_seq, records in sizes:
        while target < parts and done + records > total * target // parts:
            offset = max(0, total * target // parts - done)
            cut = (node, first_seq + offset)
            if not cuts or cut > cuts[-1]:
                cuts.append(cut)
            target += 1
        done += records
    bounds: list[Key | None] = [None, *cuts, None]
    return list(itertools.pairwise(bounds))


def verify_parallel(
    url: URL,
    heads: Mapping[str, tuple[int, str]],
    checkpoints: Mapping[str, AuditCheckpoint] | None,
    *,
    workers: int,
    page_size: int,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport | None:
    """Verify every chain of the SQLite database at ``url`` with ``workers`` processes.

    ``heads`` and ``checkpoints`` were read in one snapshot by the caller. Returns the report when
    the store is intact; None when the caller must verify serially (see the module docstring).
    """
    if url.get_backend_name() != "sqlite" or url.query or not url.database:
        return None  # a URL with options (uri=, mode=, ...): verified by the usual engine
    checkpoints = checkpoints or {}
    sizes = []
    for node in sorted(set(heads) | set(checkpoints)):
        checkpoint = checkpoints.get(node)
        start = checkpoint.seq if checkpoint is not None else 0
        head = heads.get(node)
        sizes.append((node, start + 1, max(0, (head[0] if head else 0) - start)))
    total = sum(records for _, _, records in sizes)
    ranges = plan_ranges(sizes, workers)
    if len(ranges) < 2:
        return None
    children: list[_Worker] = []
    try:
        for lo, hi in ranges:
            job = (url.database, *_range_query(lo, hi), lo, heads, checkpoints, page_size)
            children.append(_Worker(job))
    except OSError:  # no interpreter to start (an embedded Python): verify in one process
        for child in children:
            child.stop()
        return None
    try:
        while any(child.running() for child in children):
            if progress is not None:
                progress(sum(child.done for child in children), total)
            time.sleep(0.05)
        results = [child.result() for child in children]
    finally:
        for child in children:
            child.stop()
    if progress is not None:
        progress(sum(child.done for child in children), total)
    if any(result is None for result in results):
        return None
    joined = ChainVerifier(heads, checkpoints, attest=True)
    for result in results:
        assert result is not None
        for segment in result["segments"]:
            if not joined.add_segment(*segment):
                return None
        joined.add_prune_records(result["prunes"])
    report = joined.finish()
    return report if report.ok else None


def _range_query(lo: Key | None, hi: Key | None) -> tuple[str, tuple[Any, ...]]:
    """The SQL (SQLite) and parameters selecting the records in [lo, hi), in chain order."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite

    from govbus.audit.database import audit_records, select_records

    c = audit_records.c
    stmt = select_records()
    if lo is not None:
        stmt = stmt.where(sa.tuple_(c.node, c.seq) >= sa.tuple_(*lo))
    if hi is not None:
        stmt = stmt.where(sa.tuple_(c.node, c.seq) < sa.tuple_(*hi))
    compiled = stmt.compile(dialect=sqlite.dialect())
    params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    return str(compiled), params


class _Worker:
    """One range, verified by a child interpreter; its output read by a thread."""

    def __init__(self, job: tuple[Any, ...]) -> None:
        self.done = 0
        self._result: dict[str, Any] | None = None
        audit = Path(__file__).resolve().parent
        self._popen = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(audit.parent), str(audit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._popen.stdin is not None
        with contextlib.suppress(OSError):  # a child that died at once: seen as no result
            self._popen.stdin.write(pickle.dumps(job, protocol=5))
            self._popen.stdin.close()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._popen.stdout
        assert stdout is not None
        for line in stdout:
            if line.startswith(b"P "):
                self.done = int(line[2:])
            elif line.startswith(b"R "):
                with contextlib.suppress(Exception):  # a garbled result: no result
                    self._result = pickle.loads(bytes.fromhex(line[2:].decode().strip()))

    def running(self) -> bool:
        return self._reader.is_alive()

    def result(self) -> dict[str, Any] | None:
        self._reader.join()
        code = self._popen.wait()
        return self._result if code == 0 else None

    def stop(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()
        self._popen.wait()
        if self._popen.stdout is not None:
            self._popen.stdout.close()


def _verify_range(
    path: str,
    sql: str,
    params: tuple[Any, ...],
    lo: Key | None,
    heads: dict[str, tuple[int, str]],
    checkpoints: dict[str, AuditCheckpoint],
    page_size: int,
    report: Callable[[int], None],
) -> dict[str, Any] | None:
    """The worker's job: verify the rows ``sql`` selects in one read transaction of the SQLite
    file ``path``; None when any of them does not verify."""
    import sqlite3
    from urllib.parse import quote

    seeded = lo is None
    verifier = ChainVerifier(heads, checkpoints)
    # mode=rw: never create a file (as a reader must not), but join the WAL like any reader.
    target = f"file:{quote(path)}?mode=rw"
    con = sqlite3.connect(target, uri=True, timeout=30.0, isolation_level=None)
    done = 0
    try:
        con.execute("BEGIN")
        cursor = con.execute(sql, params)
        while rows := cursor.fetchmany(page_size):
            if lo is not None and not seeded and rows[0][0] == lo[0]:
                # The range starts inside lo's chain: take its first row's link on trust; the
                # parent checks it against the previous range.
                verifier.seed(lo[0], rows[0][1], rows[0][12])
            seeded = True
            if not verifier.add_rows(rows):
                return None
            done += len(rows)
            report(done)
        con.execute("ROLLBACK")
    finally:
        con.close()
    firsts = {segment[0]: segment for segment in verifier.segments()}
    return {
        "segments": [firsts[node] for node in sorted(firsts)],
        "prunes": verifier.prune_records(),
    }


def main() -> int:
    """The worker (started with ``_BOOT``): read a job (pickled) on stdin, verify its range,
    write ``P <rows done>`` lines and one ``R <pickled result, hex>`` line to stdout."""
    job = pickle.loads(sys.stdin.buffer.read())
    out = sys.stdout.buffer

    def report(done: int) -> None:
        out.write(b"P %d\n" % done)
        out.flush()

    path, sql, params, lo, heads, checkpoints, page_size = job
    try:
        result = _verify_range(path, sql, params, lo, heads, checkpoints, page_size, report)
    except Exception:  # any failure: the parent verifies serially and reports it properly
        return 1
    out.write(b"R " + pickle.dumps(result, protocol=5).hex().encode() + b"\n")
    out.flush()
    return 0
