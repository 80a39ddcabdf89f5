"""Retention: delete each chain's oldest records, leaving a checkpoint so the rest still verifies.

``govbus audit prune URL --before DATE`` calls :func:`prune_url`. Per chain, in steps of at most
``batch`` records, each step one transaction:

1. take the prune lock (PostgreSQL: an advisory lock; SQLite: the write lock, ``BEGIN
   IMMEDIATE``), so prunes run one at a time;
2. read the chain from its checkpoint (or record 1) in sequence order up to the first record at
   or after ``before``, verifying every record on the way and the link to the first kept record:
   a chain that does not verify there is left alone (pruning it would destroy the evidence);
3. delete those records, and move the chain's checkpoint (``audit_checkpoints``, schema version
   2) to the last deleted record: its seq, hash and ts;
4. append an ``admin``/``audit_prune`` record to the pruning process's own chain: who, what
   (chain, seq range, how many, the cut-off) and the new checkpoint generation with a digest of
   every checkpoint (:func:`~govbus.audit.chain.checkpoints_digest`).

So every committed state is a verifiable store: an interrupted prune leaves chains pruned up to
some step, and running it again finishes. A chain is cut at its first record at or after
``before``; an older record after that one is kept (chains stay contiguous).

A live writer may keep appending to a chain being pruned: it only inserts records after the
chain's head and moves the head row; a prune only deletes records at or before the records it
read and verified, and never touches the head row. On SQLite a step holds the write lock for the
time it takes to delete ``batch`` records (writers wait for it, within their busy timeout).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from govbus.audit.base import GENESIS_HASH, AuditCheckpoint, AuditEvent
from govbus.audit.chain import (
    PRUNE_OUTCOME,
    ChainVerifier,
    chain_row,
    checkpoints_digest,
    default_node_name,
    format_ts,
)
from govbus.audit.database import (
    DEFAULT_URL,
    audit_checkpoints,
    audit_heads,
    audit_records,
    batch_insert,
    db_error,
    describe_url,
    make_engine,
    migrate,
    normalize_url,
    read_checkpoints,
    read_heads,
    reading_engine,
    require_tables,
    select_records,
    snapshot,
    stream_rows,
)
from govbus.dburl import lock_schema
from govbus.errors import AuditError, ChainBrokenError

__all__ = ["ChainPrune", "PruneReport", "prune_url"]

#: Records deleted per transaction: bounds how long a step holds SQLite's write lock.
DEFAULT_BATCH: Final = 50_000
_LOCK: Final = "govbus.audit.prune"
_FETCH: Final = 2_000


@dataclass(frozen=True, slots=True)
class ChainPrune:
    """What a prune did (or, in a dry run, would do) to one chain."""

    node: str
    #: Records deleted from this chain by this prune.
    pruned: int
    #: The checkpoint afterwards: records up to this seq are gone (0: none ever pruned).
    pruned_to: int
    #: The first record kept, or None when every record of the chain was pruned.
    first_kept: int | None
    #: Timestamp of the last pruned record, or None when nothing was pruned.
    last_pruned_ts: str | None = None
    #: Why the chain was not pruned (fully): it does not verify where it would be cut.
    problem: str | None = None
    #: Sequence numbers of the ``audit_prune`` records written for this chain's steps.
    audit_seqs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class PruneReport:
    """The result of :func:`prune_url`."""

    where: str
    #: The cut-off (canonical RFC 3339): records before it were pruned.
    before: str
    dry_run: bool
    #: The chain the ``audit_prune`` records went to (None in a dry run).
    audit_node: str | None
    chains: list[ChainPrune] = field(default_factory=list)

    @property
    def pruned(self) -> int:
        """Records deleted (or that would be) across every chain."""
        return sum(chain.pruned for chain in self.chains)

    @property
    def ok(self) -> bool:
        """False when a chain was left alone because it does not verify."""
        return all(chain.problem is None for chain in self.chains)


@dataclass(slots=True)
class _Plan:
    """One chain's records to delete in one step, read and verified."""

    start: int  # records up to here are already pruned (the current checkpoint's seq, or 0)
    count: int = 0
    last: tuple[int, str, str] | None = None  # (seq, hash, ts) of the last record to delete
    first_kept: int | None = None
    problem: str | None = None
    more: bool = False  # the step stopped at ``limit``, not at the cut-off


def prune_url(
    url: str | URL = DEFAULT_URL,
    *,
    before: datetime,
    dry_run: bool = False,
    node: str | None = None,
    by: str | None = None,
    batch: int = DEFAULT_BATCH,
    now: datetime | None = None,
) -> PruneReport:
    """Delete the records older than ``before`` from every chain, keeping each chain verifiable.

    See the module docstring for the steps. Chains are pruned one by one; a chain that does not
    verify up to where it would be cut is left alone and reported (``ChainPrune.problem``).

    Args:
        url: a SQLAlchemy URL or a SQLite file path (never created: pruning a missing
            database is an error).
        before: the cut-off; an aware datetime (a naive one is taken as UTC). It must not be in
            the future: that would delete records still being written.
        dry_run: read and verify, report what would be deleted, change nothing (and do not
            migrate the schema).
        node: the chain the ``audit_prune`` records are appended to; default
            ``"<hostname>-<pid>"`` of this process, like any writer.
        by: who prunes, recorded in each ``audit_prune`` record; default the login name.
        batch: most records deleted per transaction.
        now: the current time (tests); default the clock.

    Raises:
        AuditError: no database or no audit tables at ``url``, a bad cut-off, or a database
            error (the step in progress is rolled back; earlier steps stay done).
    """
    if batch < 1:
        raise AuditError(f"batch must be at least 1, not {batch}")
    when = now if now is not None else datetime.now(UTC)
    cutoff_time = before if before.tzinfo is not None else before.replace(tzinfo=UTC)
    if cutoff_time > when:
        raise AuditError(
            f"the cut-off {format_ts(cutoff_time)} is in the future (now {format_ts(when)}): "
            "that would prune records still being written"
        )
    cutoff = format_ts(cutoff_time)
    target = normalize_url(url)
    where = describe_url(target)
    engine = reading_engine(target)  # refuses a SQLite file that does not exist
    if not dry_run:
        engine.dispose()
        engine = make_engine(target)
    sqlite = target.get_backend_name() == "sqlite"
    admin = node if node is not None else default_node_name()
    report = PruneReport(where, cutoff, dry_run, None if dry_run else admin)
    try:
        require_tables(engine, where)
        if not dry_run:
            migrate(engine, where)
        with snapshot(engine) as (conn, _):
            nodes = sorted(set(read_heads(conn, None)) | set(read_checkpoints(conn, None) or {}))
        pruner = _Pruner(engine, admin, cutoff, by or _login(), when)
        for chain in nodes:
            if chain == admin and not dry_run:
                continue  # its head moves with every step of this run
            report.chains.append(pruner.dry_run(chain) if dry_run else pruner.prune(chain, batch))
    except SQLAlchemyError as exc:
        raise db_error("prune", where, exc, sqlite) from exc
    finally:
        engine.dispose()
    return report


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


class _Pruner:
    def __init__(self, engine: Engine, admin: str, cutoff: str, by: str, now: datetime) -> None:
        self.engine = engine
        self.admin = admin
        self.cutoff = cutoff
        self.by = by
        self.now = now
        self.insert = batch_insert(engine)

    def dry_run(self, node: str) -> ChainPrune:
        with snapshot(self.engine) as (conn, _):
            checkpoint = (read_checkpoints(conn, node) or {}).get(node)
            plan = self._plan(conn, node, checkpoint, limit=None)
        last = plan.last if plan.problem is None else None
        return ChainPrune(
            node,
            pruned=plan.count if last is not None else 0,
            pruned_to=last[0] if last is not None else plan.start,
            first_kept=plan.first_kept,
            last_pruned_ts=last[2] if last is not None else None,
            problem=plan.problem,
        )

    def prune(self, node: str, batch: int) -> ChainPrune:
        pruned, audit_seqs = 0, []
        last_ts: str | None = None
        while True:
            with self.engine.begin() as conn:
                lock_schema(conn, _LOCK)
                checkpoint = (read_checkpoints(conn, node) or {}).get(node)
                plan = self._plan(conn, node, checkpoint, limit=batch)
                if plan.count and plan.problem is None:
                    audit_seqs.append(self._delete(conn, node, checkpoint, plan))
                    pruned += plan.count
                    last_ts = plan.last[2] if plan.last is not None else None
            if plan.problem is not None or not plan.more:
                break
        done = plan.last is not None and plan.problem is None
        return ChainPrune(
            node,
            pruned=pruned,
            pruned_to=plan.last[0] if done and plan.last is not None else plan.start,
            first_kept=plan.first_kept,
            last_pruned_ts=last_ts,
            problem=plan.problem,
            audit_seqs=tuple(audit_seqs),
        )

    def _plan(
        self, conn: Connection, node: str, checkpoint: AuditCheckpoint | None, limit: int | None
    ) -> _Plan:
        """Read ``node`` from its checkpoint up to the cut-off (at most ``limit`` records to
        delete), verifying each record and the link to the first kept one."""
        start = checkpoint.seq if checkpoint is not None else 0
        plan = _Plan(start)
        checkpoints = {node: checkpoint} if checkpoint is not None else {}
        verifier = ChainVerifier(None, checkpoints)
        stmt = select_records(node).where(audit_records.c.seq > start)
        if limit is not None:
            stmt = stmt.limit(limit + 1)
        cutoff = self.cutoff
        with contextlib.closing(stream_rows(conn, stmt, _FETCH)) as batches:
            for rows in batches:
                cut = _first_at_or_after(rows, cutoff)
                if limit is not None and cut is None and plan.count + len(rows) > limit:
                    cut = limit - plan.count  # the record after the step's last one
                    plan.more = True
                doomed = rows if cut is None else rows[:cut]
                if not verifier.add_rows(doomed):
                    break
                if doomed:
                    plan.count += len(doomed)
                    last = doomed[-1]
                    plan.last = (last[1], last[13], last[2])
                if cut is not None:
                    # The first kept record must chain onto the last deleted one (or onto the
                    # checkpoint): verify it as the next record of the chain.
                    plan.first_kept = rows[cut][1]
                    verifier.add_rows([rows[cut]])
                    break
        report = verifier.finish()
        if not report.ok:
            plan.problem = report.problem
            plan.more = False
        return plan

    def _delete(
        self, conn: Connection, node: str, checkpoint: AuditCheckpoint | None, plan: _Plan
    ) -> int:
        """Delete the planned records, move the checkpoint, write the audit_prune record; return
        that record's seq. Runs inside the step's transaction, under the prune lock."""
        assert plan.last is not None
        seq, digest, ts = plan.last
        r = audit_records.c
        deleted = conn.execute(
            sa.delete(audit_records).where(r.node == node, r.seq > plan.start, r.seq <= seq)
        ).rowcount
        if deleted != plan.count:  # only if the prune lock is bypassed: undo the step
            raise AuditError(
                f"chain {node!r} changed while it was pruned ({deleted} records deleted, "
                f"{plan.count} verified); nothing of this step was kept"
            )
        c = audit_checkpoints.c
        generation = 1 + int(conn.execute(sa.select(sa.func.max(c.generation))).scalar() or 0)
        pruned_at = format_ts(self.now)
        values = {
            "seq": seq,
            "hash": digest,
            "ts": ts,
            "generation": generation,
            "pruned_at": pruned_at,
        }
        if checkpoint is None:
            conn.execute(sa.insert(audit_checkpoints).values(node=node, **values))
        else:
            moved = conn.execute(
                sa.update(audit_checkpoints)
                .where(c.node == node, c.seq == checkpoint.seq)
                .values(**values)
            ).rowcount
            if moved != 1:
                raise AuditError(f"the checkpoint of chain {node!r} moved while it was pruned")
        every = (read_checkpoints(conn, None) or {}).values()
        data = {
            "chain": node,
            "before": self.cutoff,
            "pruned": plan.count,
            "from_seq": plan.start + 1,
            "to_seq": seq,
            "to_ts": ts,
            "to_hash": digest,
            "first_kept_seq": plan.first_kept,
            "generation": generation,
            "checkpoints": len(every),
            "checkpoints_sha256": checkpoints_digest(every),
            "by": self.by,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        event = AuditEvent(kind="admin", ts=self.now, outcome=PRUNE_OUTCOME, data=data)
        return self._append(conn, event)

    def _append(self, conn: Connection, event: AuditEvent) -> int:
        """Append ``event`` to the admin chain in this transaction; return its seq."""
        admin = self.admin
        head = read_heads(conn, admin).get(admin)
        if head is None:
            stored = conn.execute(
                sa.select(sa.func.max(audit_records.c.seq)).where(audit_records.c.node == admin)
            ).scalar()
            if stored is not None:
                raise ChainBrokenError(
                    f"chain {admin!r} has records up to {stored} but no head; choose another "
                    "--node for the audit_prune records"
                )
            prev_seq, prev_hash = 0, GENESIS_HASH
        else:
            prev_seq, prev_hash = head
        row = chain_row(admin, prev_seq + 1, prev_hash, event)
        self.insert(conn, [row])
        h = audit_heads.c
        if head is None:
            conn.execute(
                sa.insert(audit_heads).values(node=admin, seq=row["seq"], hash=row["hash"])
            )
        else:
            moved = conn.execute(
                sa.update(audit_heads)
                .where(h.node == admin, h.seq == prev_seq, h.hash == prev_hash)
                .values(seq=row["seq"], hash=row["hash"])
            ).rowcount
            if moved != 1:
                raise AuditError(
                    f"chain {admin!r} is being written by another process; choose another --node "
                    "for the audit_prune records"
                )
        return int(row["seq"])


def _first_at_or_after(rows: Sequence[Any], cutoff: str) -> int | None:
    """Index of the first row whose ts (canonical text, so it sorts) is at or after ``cutoff``."""
    for index, row in enumerate(rows):
        ts = row[2]
        if not isinstance(ts, str) or ts >= cutoff:
            return index  # an unreadable ts is not pruned (and verify will name it)
    return None
