"""Reading the newest audit records, then each record as it is committed (``govbus audit tail``).

:class:`AuditTail` reads the last ``n`` records across every chain, ordered by time, together with
every chain's head in the same snapshot; :meth:`AuditTail.poll` then returns the records
committed since, found through the heads (a writer moves its chain's head in the transaction that
inserts the records), so none is missed or shown twice however commits interleave.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from govbus.audit.chain import RECORD_COLUMNS
from govbus.audit.database import (
    audit_records,
    db_error,
    describe_url,
    normalize_url,
    read_checkpoints,
    read_heads,
    reading_engine,
    require_tables,
    snapshot,
)

__all__ = ["AuditTail"]

_COLUMNS: Final = tuple(audit_records.c[name] for name in RECORD_COLUMNS)
#: Most records :meth:`AuditTail.poll` reads per chain at a time (the rest comes next poll).
POLL_LIMIT: Final = 10_000


class AuditTail:
    """The newest records of an audit database, then the new ones as they are committed.

    Rows are tuples in :data:`~govbus.audit.chain.RECORD_COLUMNS` order, as stored (``ts`` the
    canonical text, ``data`` the JSON text). Synchronous; close it when done.

    Args:
        url: a SQLAlchemy URL or a SQLite file path.

    Raises:
        AuditError: no database or audit tables at ``url``, or a database error (from any
            method).
    """

    def __init__(self, url: str | URL) -> None:
        self._url = normalize_url(url)
        self.where = describe_url(self._url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        self._engine = reading_engine(self._url)
        self._known: dict[str, int] = {}
        try:
            require_tables(self._engine, self.where)
        except BaseException:
            self._engine.dispose()
            raise

    def last(self, n: int) -> list[tuple[Any, ...]]:
        """The ``n`` newest records (by ts) across chains, oldest first; later polls start after
        every record committed when these were read."""
        c = audit_records.c
        stmt = sa.select(*_COLUMNS).order_by(c.ts.desc(), c.node.desc(), c.seq.desc()).limit(n)
        try:
            with snapshot(self._engine) as (conn, _):
                self._known = {node: seq for node, (seq, _h) in read_heads(conn, None).items()}
                rows = [tuple(row) for row in conn.execute(stmt)] if n > 0 else []
        except SQLAlchemyError as exc:
            raise db_error("read", self.where, exc, self._sqlite) from exc
        rows.reverse()
        return rows

    def poll(self) -> list[tuple[Any, ...]]:
        """The records committed since the last call (or :meth:`last`), ordered by ts."""
        c = audit_records.c
        found: list[tuple[Any, ...]] = []
        try:
            with snapshot(self._engine) as (conn, _):
                heads = read_heads(conn, None)
                moved = {n: s for n, (s, _h) in heads.items() if s > self._known.get(n, 0)}
                if not moved:
                    return []
                fresh = [n for n in moved if n not in self._known]
                if fresh:  # a new chain (or new to us): start after its checkpoint, if pruned
                    checkpoints = read_checkpoints(conn, None) or {}
                    for node in fresh:
                        checkpoint = checkpoints.get(node)
                        self._known[node] = checkpoint.seq if checkpoint is not None else 0
                for node in sorted(moved):
                    stmt = (
                        sa.select(*_COLUMNS)
                        .where(c.node == node, c.seq > self._known[node])
                        .order_by(c.seq)
                        .limit(POLL_LIMIT)
                    )
                    rows = [tuple(row) for row in conn.execute(stmt)]
                    if rows:
                        self._known[node] = int(rows[-1][1])
                        found.extend(rows)
        except SQLAlchemyError as exc:
            raise db_error("read", self.where, exc, self._sqlite) from exc
        found.sort(key=lambda row: (str(row[2]), row[0], row[1]))
        return found

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()
