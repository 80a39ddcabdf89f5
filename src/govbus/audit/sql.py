"""``SqlAuditStore``: the hash-chained audit log in SQLite (default) or PostgreSQL.

The asyncio hot path never touches the database. :meth:`SqlAuditStore.submit` appends the event
to a deque and returns; one dedicated writer thread takes batches off the deque, seals them into
the chain (sequence numbers and hashes, see :mod:`govbus.audit.chain`), inserts each batch in
as few statements as the database allows (multi-row INSERT on SQLite, COPY on PostgreSQL) and
moves the node's head row in the same transaction. ``write()`` waits for
the commit of its batch, so concurrent ``write()`` callers share commits (group commit).

With ``writer="process"`` the sealing and inserts run in a spawned child process instead
(:mod:`govbus.audit.process`), so they no longer share the event loop's GIL: a feeder thread
takes the same batches off the deque and pickles them, as plain tuples, down a pipe; a reader
thread resolves ``write()``/``flush()`` waiters from the child's per-batch acknowledgements. Both
modes drive one synchronous core, :class:`_ChainWriter` (open, migrate, resume, commit with
retries, re-chaining and coercion).

Schema (SQLAlchemy Core, portable SQL)::

    audit_schema_version(version)
    audit_records(id PK, node, seq, ts, kind, outcome, message_id, correlation_id, msg_type,
                  sender, recipient, policy_sha256, data, prev_hash, hash; UNIQUE(node, seq))
    audit_heads(node PK, seq, hash)        -- the last record of each chain

``ts`` is stored as the canonical RFC 3339 text the hash covers (it sorts chronologically), and
``data`` as the canonical JSON text, so what is stored is exactly what was hashed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import multiprocessing.util
import operator
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from multiprocessing.connection import Connection as _PipeConnection
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, RowMapping, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, SQLAlchemyError

from govbus.audit.base import GENESIS_HASH, AuditEvent, AuditRecord, VerifyReport
from govbus.audit.chain import (
    HASHED_FIELDS,
    ChainVerifier,
    chain_row,
    default_node_name,
    row_to_record,
)
from govbus.errors import AuditError, AuditUnavailableError, ChainBrokenError

__all__ = [
    "SCHEMA_VERSION",
    "SqlAuditStore",
    "count_url",
    "iter_records_url",
    "normalize_url",
    "verify_url",
]

_log = logging.getLogger(__name__)

DEFAULT_URL: Final = "sqlite:///.govbus/audit.db"

# --------------------------------------------------------------------------------------------
# Schema and migrations

#: The schema version this code writes. Bump it together with a new entry in ``_MIGRATIONS``.
SCHEMA_VERSION: Final = 1

metadata = sa.MetaData()

# Prefixed: the audit tables may live in an application's own database, which may well have
# a "schema_version" table of its own.
schema_version = sa.Table(
    "audit_schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

audit_records = sa.Table(
    "audit_records",
    metadata,
    # SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere.
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    # VARCHAR without a length everywhere: a length limit would turn one over-long sender name
    # into a batch the database rejects forever, stalling the whole audit log.
    sa.Column("node", sa.String, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("ts", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("message_id", sa.String),
    sa.Column("correlation_id", sa.String),
    sa.Column("msg_type", sa.String),
    sa.Column("sender", sa.String),
    sa.Column("recipient", sa.String),
    sa.Column("policy_sha256", sa.String),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String, nullable=False),
    sa.Column("hash", sa.String, nullable=False),
    sa.UniqueConstraint("node", "seq", name="uq_audit_records_node_seq"),
    sa.Index("ix_audit_records_message_id", "message_id"),
    sa.Index("ix_audit_records_correlation_id", "correlation_id"),
    sa.Index("ix_audit_records_ts", "ts"),
)

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("node", sa.String, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String, nullable=False),
)

_RECORD_COLUMNS: Final = (*HASHED_FIELDS, "hash")


def _create_v1(conn: Connection) -> None:
    # While version 1 is the newest, the table objects above *are* version 1. When version 2
    # changes them, freeze this step's DDL here so old databases still migrate step by step.
    audit_records.create(conn, checkfirst=True)
    audit_heads.create(conn, checkfirst=True)


#: ``_MIGRATIONS[n - 1]`` brings a database from version ``n - 1`` to ``n``. Append; never edit.
_MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_create_v1,)


_InsertRows = Callable[[Connection, list[dict[str, Any]]], None]
_row_values = operator.itemgetter(*_RECORD_COLUMNS)


def _batch_insert(engine: Engine) -> _InsertRows:
    """The fastest way this database takes a batch of rows, as ``insert(conn, rows)``.

    The writer shares the GIL with the event loop, so what matters is GIL time per row and how
    often the writer has to win the GIL back. Measured with 100k rows in batches of 1000 on
    SQLite, against a CPU-bound thread standing in for the loop: executemany releases the GIL
    around every row's step and got 13k rows/s; multi-row VALUES with 250 rows per statement
    got 70k rows/s (210k vs 145k rows/s uncontended). On PostgreSQL, psycopg's COPY got 23k
    rows/s contended vs 9k for executemany (72k vs 49k uncontended); multi-row VALUES was
    slower there. Other databases get SQLAlchemy's executemany.
    """
    quote = engine.dialect.identifier_preparer.quote
    table = quote(audit_records.name)
    columns = ", ".join(quote(name) for name in _RECORD_COLUMNS)
    backend, driver = engine.dialect.name, engine.dialect.driver

    if backend == "sqlite" and engine.dialect.paramstyle == "qmark":
        max_variables = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
        per_statement = min(250, max_variables // len(_RECORD_COLUMNS))
        one = "(" + ", ".join("?" * len(_RECORD_COLUMNS)) + ")"

        @functools.lru_cache(maxsize=8)
        def statement(n: int) -> str:
            return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one] * n)

        def insert_values(conn: Connection, rows: list[dict[str, Any]]) -> None:
            flatten = itertools.chain.from_iterable
            for start in range(0, len(rows), per_statement):
                part = rows[start : start + per_statement]
                conn.exec_driver_sql(statement(len(part)), tuple(flatten(map(_row_values, part))))

        return insert_values

    if backend == "postgresql" and driver == "psycopg":
        copy_sql = f"COPY {table} ({columns}) FROM STDIN"

        dbapi_error = engine.dialect.loaded_dbapi.Error

        def insert_copy(conn: Connection, rows: list[dict[str, Any]]) -> None:
            driver_conn: Any = conn.connection.driver_connection
            try:
                with driver_conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    write_row = copy.write_row
                    for values in map(_row_values, rows):
                        write_row(values)
            except dbapi_error as exc:
                # Bypassing SQLAlchemy, so do what it would: drop a dead connection from the
                # pool and raise its exception classes (the writer tells transient failures
                # and chain conflicts apart by them).
                if driver_conn.closed:
                    conn.invalidate(exc)
                raise sa.exc.DBAPIError.instance(
                    copy_sql, None, exc, dbapi_error, dialect=engine.dialect
                ) from exc

        return insert_copy

    insert = audit_records.insert()

    def insert_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(insert, rows)

    return insert_many


def _migrate(engine: Engine, where: str) -> None:
    """Create the schema or bring it up to :data:`SCHEMA_VERSION`, in one transaction."""
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        found = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        current = int(found or 0)
        if current > SCHEMA_VERSION:
            raise AuditError(
                f"audit database at {where} has schema version {current}, newer than this "
                f"govbus understands ({SCHEMA_VERSION}); upgrade govbus"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[version - 1](conn)
        if current == 0:
            conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
        elif current < SCHEMA_VERSION:
            conn.execute(schema_version.update().values(version=SCHEMA_VERSION))


# --------------------------------------------------------------------------------------------
# URLs and engines


def normalize_url(url: str | URL) -> URL:
    """Turn a database URL or a bare file path into the URL the store connects to.

    A bare path (no ``://``) means a SQLite file. A relative SQLite path is made absolute against
    the current working directory now, so a later ``chdir`` cannot switch files. A plain
    ``postgresql://`` URL gets the psycopg 3 driver (the ``postgres`` extra).

    Raises:
        AuditError: the URL cannot be parsed or names an in-memory SQLite database (each
            connection would see its own empty database; use ``MemoryAuditStore``).

    Example:
        >>> normalize_url("postgresql://u@db/audit").drivername
        'postgresql+psycopg'
    """
    if isinstance(url, URL):
        parsed = url
    elif "://" not in url:
        parsed = URL.create("sqlite", database=url)
    else:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise AuditError(f"cannot parse audit database URL {url!r}: {exc}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file::memory:"):
            raise AuditError(
                "an in-memory SQLite audit database is not supported (every connection would "
                "see a different empty database); use a file path or MemoryAuditStore"
            )
        if not parsed.query.get("uri"):
            parsed = parsed.set(database=os.path.abspath(os.path.expanduser(database)))
    return parsed


def _describe(url: URL) -> str:
    """Where the store is, for error messages: the file for SQLite, else the URL sans password."""
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (verify, tail) run while the writer commits; synchronous=NORMAL makes a
    # commit cost a WAL append instead of an fsync (durable against a process crash, not against
    # a power cut, which is the usual trade for a log written at tens of thousands per second).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _make_engine(url: URL, *, writer: bool = True) -> Engine:
    if url.get_backend_name() == "sqlite":
        # A generous busy timeout: several processes (one chain each) may share one file. A
        # ``?timeout=`` in the URL overrides it.
        connect_args = {} if "timeout" in url.query else {"timeout": 30.0}
        engine = sa.create_engine(url, connect_args=connect_args)
        if writer:  # switching to WAL is a write; a reader may look at a read-only copy
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url)


def _reading_engine(url: URL) -> Engine:
    """An engine for reading only: never creates a SQLite file or directory."""
    sqlite_file = url.get_backend_name() == "sqlite" and not url.query.get("uri")
    if sqlite_file and url.database and not os.path.exists(url.database):
        raise AuditError(f"no audit database at {url.database}")
    return _make_engine(url, writer=False)


def _short(exc: BaseException) -> str:
    """The driver's own message (no SQL, no parameters), for errors and logs."""
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"


def _db_error(action: str, where: str, exc: SQLAlchemyError, sqlite: bool) -> AuditError:
    detail = getattr(exc, "orig", None) or exc
    message = f"cannot {action} audit database at {where}: {detail}"
    # A server that is down may come back; a SQLite file we cannot open will not.
    if isinstance(exc, OperationalError) and not sqlite:
        return AuditUnavailableError(message)
    return AuditError(message)


# --------------------------------------------------------------------------------------------
# Reading (shared by the store, verify_url and the CLI)


def _read_heads(conn: Connection, node: str | None) -> dict[str, tuple[int, str]]:
    stmt = sa.select(audit_heads.c.node, audit_heads.c.seq, audit_heads.c.hash)
    if node is not None:
        stmt = stmt.where(audit_heads.c.node == node)
    return {row.node: (int(row.seq), row.hash) for row in conn.execute(stmt)}


_PageKey = tuple[str, int, int]
_SELECT_RECORDS = sa.select(
    *(audit_records.c[name] for name in _RECORD_COLUMNS), audit_records.c.id
)


def _fetch_page(
    engine: Engine, node: str | None, after: _PageKey | None, limit: int
) -> list[RowMapping]:
    """One page of rows ordered by (node, seq, id), after the key of the previous page's last row.

    Keyset paging keeps each query cheap however far into the log it is; ``id`` in the key makes
    it exact even if a tampered database holds two rows with the same (node, seq).
    """
    c = audit_records.c
    stmt = _SELECT_RECORDS.order_by(c.node, c.seq, c.id).limit(limit)
    if node is not None:
        stmt = stmt.where(c.node == node)
        if after is not None:
            stmt = stmt.where(sa.tuple_(c.seq, c.id) > sa.tuple_(after[1], after[2]))
    elif after is not None:
        stmt = stmt.where(sa.tuple_(c.node, c.seq, c.id) > sa.tuple_(*after))
    with engine.connect() as conn:
        return list(conn.execute(stmt).mappings())


def _require_tables(engine: Engine, where: str) -> None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("audit_records"):
            raise AuditError(f"no audit records at {where} (the audit_records table is missing)")


def _iter_rows(engine: Engine, node: str | None, page_size: int) -> Iterator[RowMapping]:
    after: _PageKey | None = None
    while True:
        rows = _fetch_page(engine, node, after, page_size)
        yield from rows
        if len(rows) < page_size:
            return
        last = rows[-1]
        after = (last["node"], int(last["seq"]), int(last["id"]))


def _verify_engine(engine: Engine, node: str | None, page_size: int) -> VerifyReport:
    """Stream every record through a :class:`ChainVerifier` in pages (constant memory)."""
    with engine.connect() as conn:
        # Heads first: a live writer may append after this, so chains may run past their heads
        # but never stop short of them.
        heads = _read_heads(conn, node)
    verifier = ChainVerifier(heads)
    for row in _iter_rows(engine, node, page_size):
        try:
            record = row_to_record(row)
        except Exception as exc:  # a stored ts or data that does not even parse
            problem = (
                f"record {row['seq']} of chain {row['node']!r}: stored row cannot be read "
                f"({type(exc).__name__}: {exc}) (changed after writing?)"
            )
            verifier.fail(row["node"], row["seq"], problem, None)
            break
        if not verifier.add(record):
            break
    late: dict[str, tuple[int, str]] = {}
    headless = verifier.nodes_without_head()
    if headless and not verifier.broken:
        # A chain that started after the heads were read has a head by now; a chain whose
        # head row was deleted still has none.
        with engine.connect() as conn:
            late = {n: h for n, h in _read_heads(conn, node).items() if n in headless}
    return verifier.finish(late_heads=late)


def verify_url(
    url: str | URL = DEFAULT_URL, *, node: str | None = None, page_size: int = 1000
) -> VerifyReport:
    """Verify every chain (or one) in the audit database at ``url``; synchronous.

    Used by ``govbus audit verify [URL]``. Reads in pages, so memory stays constant. Safe to run
    while writers are appending.

    Args:
        url: a SQLAlchemy URL or a SQLite file path.
        node: verify only this chain.
        page_size: records per query.

    Raises:
        AuditError: no database or no audit tables at ``url``, or it cannot be read.
    """
    target = normalize_url(url)
    where = _describe(target)
    engine = _reading_engine(target)
    try:
        _require_tables(engine, where)
        return _verify_engine(engine, node, page_size)
    except SQLAlchemyError as exc:
        raise _db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()


def count_url(url: str | URL = DEFAULT_URL, *, node: str | None = None) -> int:
    """Return how many audit records the database at ``url`` holds (for ``node`` only if given)."""
    target = normalize_url(url)
    where = _describe(target)
    engine = _reading_engine(target)
    try:
        _require_tables(engine, where)
        stmt = sa.select(sa.func.count()).select_from(audit_records)
        if node is not None:
            stmt = stmt.where(audit_records.c.node == node)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    except SQLAlchemyError as exc:
        raise _db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()


def iter_records_url(
    url: str | URL = DEFAULT_URL, *, node: str | None = None, page_size: int = 1000
) -> Iterator[AuditRecord]:
    """Yield the records at ``url`` ordered by node then sequence, reading page by page."""
    target = normalize_url(url)
    where = _describe(target)
    engine = _reading_engine(target)
    try:
        _require_tables(engine, where)
        for row in _iter_rows(engine, node, page_size):
            yield row_to_record(row)
    except SQLAlchemyError as exc:
        raise _db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# The synchronous writer core (shared by the writer thread and the writer process)


class _ChainConflictError(Exception):
    """The head row moved under us: another process appended to this node's chain."""


class _Abort(Protocol):
    """What the writer core needs of an abort flag (``threading.Event`` or its
    ``multiprocessing`` twin)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _no_spool(rows: list[dict[str, Any]], error: BaseException) -> bool:
    return False


def _ignore(error: str) -> None:
    return None


class _ChainWriter:
    """Opens the database and appends sealed batches to one node's chain; no asyncio.

    The writer thread and the writer process (:mod:`govbus.audit.process`) both drive one of
    these, so the retry, re-chaining and coercion rules exist once.

    Args:
        url: the normalized database URL.
        node: the chain to append to.
        write_timeout: how long a batch fails before it is offered to ``on_persistent_failure``.
        abort: set to stop retrying (``commit`` then returns False).
        on_persistent_failure: the spool seam, see :meth:`SqlAuditStore._on_persistent_failure`.
        on_error: told the short text of every failed attempt (for waiters' error messages).
    """

    def __init__(
        self,
        url: URL,
        node: str,
        *,
        write_timeout: float,
        abort: _Abort,
        on_persistent_failure: Callable[[list[dict[str, Any]], BaseException], bool] = _no_spool,
        on_error: Callable[[str], None] = _ignore,
    ) -> None:
        self.url = url
        self.where = _describe(url)
        self.sqlite = url.get_backend_name() == "sqlite"
        self.node = node
        self.write_timeout = write_timeout
        self.abort = abort
        self.on_persistent_failure = on_persistent_failure
        self.on_error = on_error
        self.engine: Engine | None = None
        self.seq = 0
        self.hash = GENESIS_HASH
        self.last_error: str | None = None
        self._insert_rows: _InsertRows | None = None

    def open(self) -> Engine:
        """Create the SQLite directory, open the engine, migrate, resume the chain's head.

        Raises:
            AuditError: the SQLite file cannot be created or the schema is too new.
            AuditUnavailableError: a database server cannot be reached.
            ChainBrokenError: the chain has records but no head row.
        """
        url = self.url
        if self.sqlite and url.database and not url.query.get("uri"):
            path = Path(url.database)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise AuditError(f"cannot create audit database at {path}: {reason}") from exc
        engine = _make_engine(url)
        try:
            _migrate(engine, self.where)
            with engine.connect() as conn:
                head = _read_heads(conn, self.node).get(self.node)
                if head is None:
                    last = conn.execute(
                        sa.select(sa.func.max(audit_records.c.seq)).where(
                            audit_records.c.node == self.node
                        )
                    ).scalar()
                    if last is not None:
                        raise ChainBrokenError(
                            f"chain {self.node!r} in {self.where} has records up to {last} "
                            "but no head row (head deleted, and maybe the tail with it?); run "
                            "`govbus audit verify` and choose another node name"
                        )
        except SQLAlchemyError as exc:
            engine.dispose()
            raise _db_error("open", self.where, exc, self.sqlite) from exc
        except BaseException:
            engine.dispose()
            raise
        if head is not None:
            self.seq, self.hash = head
        self._insert_rows = _batch_insert(engine)
        self.engine = engine
        return engine

    def dispose(self) -> None:
        """Release the engine's connections."""
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _prepare(
        self, events: Sequence[AuditEvent], seq: int, prev: str, coerce: bool = False
    ) -> list[dict[str, Any]]:
        node = self.node
        rows: list[dict[str, Any]] = []
        append = rows.append
        for event in events:
            seq += 1
            row = chain_row(node, seq, prev, event, coerce=coerce)
            prev = row["hash"]
            append(row)
        return rows

    def commit(self, events: Sequence[AuditEvent]) -> bool:
        """Seal and insert one batch, retrying until it is committed; False if aborted."""
        seq, prev = self.seq, self.hash
        rows = self._prepare(events, seq, prev)
        failing_since: float | None = None
        attempt = 0
        coerced = False
        while True:
            try:
                self._insert(rows, seq, prev)
                break
            except (IntegrityError, _ChainConflictError) as exc:
                head = self._head_or_none()
                last = rows[-1]
                if head == (last["seq"], last["hash"]):
                    break  # an earlier attempt committed but its acknowledgement was lost
                if head is not None and head != (seq, prev):
                    _log.warning(
                        "audit chain %r was extended by another writer (head %d); re-chaining "
                        "a batch of %d records after it",
                        self.node,
                        head[0],
                        len(rows),
                    )
                    seq, prev = head
                    rows = self._prepare(events, seq, prev, coerced)
                    continue
                error: BaseException = exc  # the same head: a genuine constraint failure
            except Exception as exc:
                error = exc
            if not coerced and not isinstance(error, OperationalError | _ChainConflictError):
                # Not the connection but a value the database refuses (PostgreSQL takes no NUL
                # in text): retrying as is would stall the log forever. Seal the batch again
                # with every field coerced and cleaned; nothing of it was committed.
                _log.warning("audit batch refused by %s (%s); coercing", self.where, _short(error))
                coerced = True
                rows = self._prepare(events, seq, prev, coerce=True)
                continue
            self.last_error = _short(error)
            self.on_error(self.last_error)
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                _log.warning("audit write to %s failed, retrying: %s", self.where, self.last_error)
            if now - failing_since >= self.write_timeout and self.on_persistent_failure(
                rows, error
            ):
                break
            # Capped well below write_timeout, so a database that comes back is used again
            # before waiters conclude that it is still down.
            delay = min(0.05 * 2**attempt, 1.0, self.write_timeout / 4)
            attempt += 1
            if self.abort.wait(delay):
                return False
        if failing_since is not None:
            _log.warning("audit writes to %s recovered", self.where)
        last = rows[-1]
        self.seq, self.hash = last["seq"], last["hash"]
        self.last_error = None
        return True

    def _insert(self, rows: list[dict[str, Any]], prev_seq: int, prev_hash: str) -> None:
        """Insert ``rows`` and move the head, atomically.

        The head update is conditional, so a second writer on the same chain is noticed
        instead of forking the chain.
        """
        assert self.engine is not None
        assert self._insert_rows is not None
        last = rows[-1]
        heads = audit_heads.c
        with self.engine.begin() as conn:
            self._insert_rows(conn, rows)
            if prev_seq == 0:
                conn.execute(
                    audit_heads.insert(),
                    {"node": self.node, "seq": last["seq"], "hash": last["hash"]},
                )
            else:
                moved = conn.execute(
                    audit_heads.update()
                    .where(heads.node == self.node)
                    .where(heads.seq == prev_seq)
                    .where(heads.hash == prev_hash)
                    .values(seq=last["seq"], hash=last["hash"])
                )
                if moved.rowcount != 1:
                    raise _ChainConflictError(self.node)

    def _head_or_none(self) -> tuple[int, str] | None:
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                return _read_heads(conn, self.node).get(self.node)
        except SQLAlchemyError:
            return None


_STARTUP_ERRORS: Final[dict[str, type[AuditError]]] = {
    "AuditError": AuditError,
    "AuditUnavailableError": AuditUnavailableError,
    "ChainBrokenError": ChainBrokenError,
}


class _ChildProcess:
    """The writer child as the store sees it (``subprocess.Popen`` with the small part of the
    ``multiprocessing.Process`` interface the store uses)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def close(self) -> None:
        self._popen.wait()


def _reap(process: Any, timeout: float) -> bool:
    """Join ``process`` within ``timeout``, else terminate (then kill) it; True if it exited."""
    process.join(timeout)
    if process.exitcode is not None:
        return True
    process.terminate()
    process.join(2.0)
    if process.exitcode is None:
        process.kill()
        process.join()
    return False


# --------------------------------------------------------------------------------------------
# The store


class _Waiter:
    """A queue entry that resolves ``future`` once every event queued before it is committed."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future


def _resolve(futures: Sequence[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


#: Seconds ``start()`` waits for the writer process to open the database and report.
_PROCESS_START_TIMEOUT: Final = 60.0


class SqlAuditStore:
    """Append-only, hash-chained audit store on SQLAlchemy 2 (SQLite or PostgreSQL).

    Example:
        >>> import asyncio, tempfile
        >>> from datetime import UTC, datetime
        >>> async def demo(path: str) -> int:
        ...     store = SqlAuditStore(path, node="doc")
        ...     await store.start()
        ...     store.submit(AuditEvent(kind="admin", ts=datetime.now(UTC), outcome="start"))
        ...     await store.write(AuditEvent(kind="admin", ts=datetime.now(UTC), outcome="ok"))
        ...     report = await store.verify()
        ...     await store.close()
        ...     return report.records
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asyncio.run(demo(f"{tmp}/audit.db"))
        2

    Args:
        url: a SQLAlchemy URL (``sqlite:///relative.db``, ``sqlite:////abs.db``,
            ``postgresql://user@host/db``) or a bare SQLite file path.
        node: the chain this process appends to. Defaults to ``"<hostname>-<pid>"``: one chain
            per writer process, so two processes never race for the next sequence number of one
            chain. Give a stable name to continue the same chain across restarts; at most one
            live process should use a given name (a second one is detected and re-chained after,
            at the cost of retries).
        batch_size: most events per insert and commit.
        flush_interval: how long (seconds) the writer lets ``submit``-ed events accumulate
            before committing a partial batch. ``write`` and ``flush`` do not wait for it.
        max_queue: most events waiting for the writer; ``submit`` then raises
            :class:`AuditUnavailableError` (fail closed; nothing is dropped silently).
        write_timeout: how long (seconds) ``write`` and ``flush`` wait while the writer makes no
            progress (database down) before raising :class:`AuditUnavailableError`.
        page_size: records per query when reading.
        writer: ``"thread"`` seals and inserts in a thread of this process; ``"process"`` in a
            child process (spawned, named ``govbus-audit-writer[<node>]``), so sealing and
            inserts do not hold this process's GIL. This process then only queues events and
            pickles plain tuples to the child in a feeder thread. If the child dies, waiters and
            later ``submit`` calls get :class:`AuditUnavailableError` (fail closed). The spool
            seam (:meth:`_on_persistent_failure`) is only available with ``"thread"``. As with
            any spawned process, a script that starts the store must guard its entry point with
            ``if __name__ == "__main__":``.
    """

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        node: str | None = None,
        batch_size: int = 1000,
        flush_interval: float = 0.05,
        max_queue: int = 100_000,
        write_timeout: float = 5.0,
        page_size: int = 1000,
        writer: Literal["thread", "process"] = "thread",
    ) -> None:
        if batch_size < 1 or max_queue < 1 or page_size < 1:
            raise ValueError("batch_size, max_queue and page_size must be at least 1")
        if writer not in ("thread", "process"):
            raise ValueError(f"writer must be 'thread' or 'process', not {writer!r}")
        if writer == "process" and (
            type(self)._on_persistent_failure is not SqlAuditStore._on_persistent_failure
        ):
            # The seam runs where the batch is, i.e. in the child, which knows nothing of
            # this subclass: refuse rather than silently never spool.
            raise ValueError("a spool (_on_persistent_failure) needs writer='thread'")
        self._url = normalize_url(url)
        self._where = _describe(self._url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        # Computed here, in the parent, so the default chain is named after this process.
        self._node = node if node is not None else default_node_name()
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._write_timeout = write_timeout
        self._page_size = page_size
        self._mode = writer

        # Shared with the writer (or feeder) thread. deque.append/popleft are atomic, so submit
        # takes no lock; the writer is woken through ``_wakeup`` only when it must not linger.
        self._queue: deque[AuditEvent | _Waiter] = deque()
        self._wakeup = threading.Event()
        self._abort = threading.Event()  # give up retrying (close while the database is down)
        self._stopping = False
        # Set when a caller waits for a commit (write, flush): send partial batches at once.
        self._urgent = False
        self._lingering_since: float | None = None
        self._accepting = False
        self._state = "new"  # new -> started -> closed
        self._lifecycle = asyncio.Lock()  # start and close run one at a time
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._thread: threading.Thread | None = None
        self._progress = 0  # batches committed; tells a slow database from a stuck one
        self._waiting: set[asyncio.Future[None]] = set()  # futures of write() and flush()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None
        self._watch_seen = 0
        self._last_error: str | None = None  # short text of the latest write failure
        self._uncommitted = 0  # events abandoned by an aborted close (or a dead child)

        # Thread mode: the core, owned by the writer thread after start().
        self._chain: _ChainWriter | None = None
        # Process mode: the child, its pipe, and the batches sent but not yet acknowledged
        # (id -> [event count, waiters]), shared by the feeder and reader threads.
        self._process: Any = None  # multiprocessing.process.BaseProcess
        self._conn: Any = None  # multiprocessing.connection.Connection
        self._child_abort: Any = None  # Connection: a byte on it stops the child retrying
        self._reader_thread: threading.Thread | None = None
        self._finalizer: Any = None
        self._pending: dict[int, list[Any]] = {}
        self._pending_lock = threading.Lock()
        self._process_lock = threading.Lock()  # one thread at a time reaps the child
        self._next_batch = 0
        self._dead: str | None = None  # why the writer process is gone, once it is

    # -- properties -----------------------------------------------------------------------

    @property
    def node(self) -> str:
        """The name of the chain this store appends to."""
        return self._node

    @property
    def url(self) -> URL:
        """The normalized database URL."""
        return self._url

    @property
    def writer(self) -> Literal["thread", "process"]:
        """Where sealing and inserts run: ``"thread"`` or ``"process"``."""
        return "process" if self._mode == "process" else "thread"

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid while it is started (process mode); None otherwise."""
        process = self._process
        return None if process is None else int(process.pid)

    @property
    def batches(self) -> int:
        """Batches committed since :meth:`start` (each is one transaction)."""
        return self._progress

    @property
    def pending(self) -> int:
        """Events (and waiters) queued for the writer and not yet taken into a batch."""
        return len(self._queue)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, create or migrate the schema, resume this node's chain.

        Idempotent. Raises :class:`AuditError` naming the path when a SQLite file cannot be
        created, :class:`AuditUnavailableError` when a database server cannot be reached, and
        :class:`ChainBrokenError` when this node's chain has records but its head row is gone
        (it will not extend a chain whose tail may have been cut; run ``govbus audit verify``).
        In process mode the child does all of this and the same errors are raised here.
        """
        async with self._lifecycle:
            if self._state == "started":
                return
            if self._state == "closed":
                raise AuditError("audit store is closed; create a new one")
            if self._mode == "process":
                await asyncio.to_thread(self._spawn)
                target = self._feed_forever
            else:
                chain = _ChainWriter(
                    self._url,
                    self._node,
                    write_timeout=self._write_timeout,
                    abort=self._abort,
                    on_persistent_failure=self._on_persistent_failure,
                    on_error=self._note_error,
                )
                self._engine = await asyncio.to_thread(chain.open)
                self._chain = chain
                target = self._loop_forever
            # A daemon thread, so a process that forgets close() can still exit; close() (or
            # App.close()) is what guarantees the queue reaches the database.
            self._thread = threading.Thread(
                target=self._run,
                args=(target,),
                name=f"govbus-audit-writer[{self._node}]",
                daemon=True,
            )
            self._thread.start()
            if self._reader_thread is not None:
                self._reader_thread.start()
            self._accepting = True
            self._state = "started"

    def _note_error(self, error: str) -> None:
        self._last_error = error

    async def close(self) -> None:
        """Flush, stop the writer and release the database. Idempotent.

        Raises:
            AuditUnavailableError: the database stayed down (or the writer process died), so
                queued events could not be committed; the message says how many.
        """
        async with self._lifecycle:
            if self._state == "closed":
                return
            self._accepting = False
            failure: AuditUnavailableError | None = None
            if self._state == "started":
                try:
                    await self.flush()
                except AuditUnavailableError as exc:
                    failure = exc
                    self._abort.set()
                    if self._child_abort is not None:
                        with contextlib.suppress(OSError):  # a dead child needs no telling
                            self._child_abort.send_bytes(b"A")
                self._stopping = True
                self._wakeup.set()
                if self._mode == "process":
                    await asyncio.to_thread(self._stop_process)
                elif self._thread is not None:
                    await asyncio.to_thread(self._thread.join)
            self._state = "closed"
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            if self._chain is not None:
                self._chain.dispose()
            for engine in (self._engine, self._reader):
                if engine is not None:
                    engine.dispose()
            self._engine = self._reader = None
            if failure is None and self._uncommitted:
                failure = AuditUnavailableError(self._dead or "the writer process was stopped")
            if failure is not None:
                raise AuditUnavailableError(
                    f"audit store closed with {self._uncommitted} events not committed to "
                    f"{self._where}: {failure.message}"
                ) from failure

    # -- writing (event loop side) --------------------------------------------------------

    def submit(self, event: AuditEvent) -> None:
        """Queue ``event`` for the writer and return at once (``batch`` durability).

        O(1) and lock-free: no hashing or serialization happens on the caller's thread.

        Raises:
            AuditError: the store is not started or already closed.
            AuditUnavailableError: ``max_queue`` events are already waiting (the database is
                down or too slow), or the writer process died; the event was not queued.
        """
        if not self._accepting:
            if self._dead is not None:
                raise AuditUnavailableError(self._dead)
            raise AuditError(f"cannot write audit event: the audit store is {self._state_text()}")
        queue = self._queue
        size = len(queue)
        if size >= self._max_queue:
            raise AuditUnavailableError(
                f"audit queue full ({self._max_queue} events waiting for {self._where}); "
                "the database is down or not keeping up"
            )
        queue.append(event)
        if size + 1 >= self._batch_size and not self._wakeup.is_set():
            self._wakeup.set()  # a full batch is ready: don't let the writer linger

    async def write(self, event: AuditEvent) -> None:
        """Queue ``event`` and wait until it is committed (``sync`` durability).

        Concurrent callers share commits. If the database makes no progress for
        ``write_timeout`` seconds this raises :class:`AuditUnavailableError`; the event stays
        queued and is still written when the database comes back.
        """
        self.submit(event)
        await self._wait_committed()

    async def flush(self) -> None:
        """Wait until every event submitted so far is committed.

        Raises:
            AuditUnavailableError: the database made no progress for ``write_timeout`` seconds,
                or the writer process died.
        """
        if self._dead is not None:
            raise AuditUnavailableError(self._dead)
        if self._state != "started" or self._abort.is_set():
            return
        await self._wait_committed()

    async def _wait_committed(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiting = self._waiting
        waiting.add(future)
        future.add_done_callback(waiting.discard)
        self._queue.append(_Waiter(loop, future))
        self._urgent = True
        if not self._wakeup.is_set():
            self._wakeup.set()
        if self._watchdog is None or self._watchdog_loop is not loop:
            self._arm_watchdog(loop)
        await future

    # One timer per store, not one per waiter: with a thousand concurrent write() callers a
    # per-call asyncio.wait(timeout=...) costs more than the commit it waits for.
    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog_loop = loop
        self._watch_seen = self._progress
        self._watchdog = loop.call_later(self._write_timeout, self._check_progress)

    def _check_progress(self) -> None:
        """Fail every waiter if the writer committed nothing during the last ``write_timeout``."""
        self._watchdog = None
        if not self._waiting:
            return
        thread = self._thread
        alive = thread is not None and thread.is_alive() and self._dead is None
        if self._progress != self._watch_seen and alive:
            self._arm_watchdog(asyncio.get_running_loop())  # slow but moving: keep waiting
            return
        error = self._last_error
        detail = f": {error}" if error is not None else ""
        message = (
            f"audit database at {self._where} committed nothing for "
            f"{self._write_timeout:g}s{detail}; the events stay queued"
        )
        loop = asyncio.get_running_loop()
        for future in list(self._waiting):
            # A store is normally used from one loop; futures of another loop are not ours to
            # touch from here.
            if future.get_loop() is loop and not future.done():
                future.set_exception(AuditUnavailableError(message))

    def _state_text(self) -> str:
        if self._state == "new":
            return "not started (await store.start() first)"
        return "closed" if self._state == "closed" else "closing"

    # -- the writer thread (thread mode) or feeder thread (process mode) -----------------

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:  # a bug; waiters see a dead writer and fail, callers learn of it
            _log.exception("audit writer for %s crashed", self._where)
            raise

    def _loop_forever(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        while True:
            # Linger up to flush_interval so submitted events form big batches; submit (full
            # batch), write, flush and close cut the wait short.
            wakeup.wait(self._flush_interval)
            wakeup.clear()
            while self._batch_due() and not self._abort.is_set():
                self._write_batch()
            if self._abort.is_set():
                self._abandon()
                return
            if self._stopping and not queue:
                return

    def _batch_due(self) -> bool:
        """Whether to take a batch now. Under load only full batches go: sending whatever
        trickled in since the last batch makes many tiny batches, and each costs the event
        loop a GIL handoff (and, in process mode, a pipe round trip). A partial batch goes
        when someone waits for a commit, when the store is stopping, or once it has lingered
        for ``flush_interval``."""
        queue = self._queue
        if not queue:
            self._urgent = False
            self._lingering_since = None
            return False
        if len(queue) >= self._batch_size or self._urgent or self._stopping:
            return True
        now = time.monotonic()
        if self._lingering_since is None:
            self._lingering_since = now
            return False
        if now - self._lingering_since >= self._flush_interval:
            self._lingering_since = None
            return True
        return False

    def _take_batch(self) -> tuple[list[AuditEvent], list[_Waiter]]:
        queue, limit = self._queue, self._batch_size
        events: list[AuditEvent] = []
        waiters: list[_Waiter] = []
        pop, add_event, add_waiter = queue.popleft, events.append, waiters.append
        try:
            while len(events) < limit:
                item = pop()
                if type(item) is _Waiter:
                    add_waiter(item)
                else:
                    add_event(item)  # type: ignore[arg-type]
        except IndexError:
            pass
        return events, waiters

    def _write_batch(self) -> None:
        events, waiters = self._take_batch()
        if events:
            assert self._chain is not None
            if not self._chain.commit(events):
                self._uncommitted += len(events)
                self._finish_waiters(waiters, self._abandon_error())
                return
            self._last_error = None
            self._progress += 1
        self._finish_waiters(waiters, None)

    def _on_persistent_failure(self, rows: list[dict[str, Any]], error: BaseException) -> bool:
        """Seam for the local spool: called after every failed attempt once a batch has failed
        for ``write_timeout`` seconds (thread mode only).

        ``rows`` are sealed records (chained after the last committed one) in order. Return True
        if they were persisted elsewhere (the writer then counts the batch as committed and
        moves on); False keeps retrying the database. A spool that takes rows over must replay
        them, in order, before the database sees later batches. Without a spool, callers of
        ``write``/``flush`` get :class:`AuditUnavailableError` and ``submit`` fails once
        ``max_queue`` is reached: fail closed.
        """
        return False

    def _abandon(self) -> None:
        # Only on close() with the database down (or once the writer process died): count what
        # cannot be written and release anyone still waiting, so the thread can exit.
        waiters: list[_Waiter] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Waiter):
                waiters.append(item)
            else:
                self._uncommitted += 1
        if self._uncommitted and self._dead is None:
            _log.error(
                "audit store closed with %d events not committed to %s: %s",
                self._uncommitted,
                self._where,
                self._last_error,
            )
        self._finish_waiters(waiters, self._abandon_error())

    def _abandon_error(self) -> AuditUnavailableError:
        if self._dead is not None:
            return AuditUnavailableError(self._dead)
        return AuditUnavailableError(
            f"audit store closed before these events reached {self._where}: {self._last_error}"
        )

    @staticmethod
    def _finish_waiters(waiters: list[_Waiter], error: BaseException | None) -> None:
        if not waiters:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiter in waiters:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
        for loop, futures in by_loop.items():
            # One thread-safe call per loop and batch, not one per waiter: each call writes to
            # the loop's self-pipe.
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, futures, error)

    # -- the writer process (process mode) ------------------------------------------------

    def _spawn(self) -> None:
        """Start the child and wait (bounded) until it has opened the database, or raise its
        startup error.

        The child is a fresh interpreter running ``python -m govbus.audit.process``, not a
        ``multiprocessing`` spawn: spawn re-imports the user's ``__main__``, so every script
        using the store would need an ``if __name__ == "__main__"`` guard.
        """
        parent_sock, child_sock = socket.socketpair()
        abort_read, abort_write = os.pipe()
        env = dict(os.environ)
        # The child must import this very govbus, wherever the parent found it.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        command = [
            sys.executable,
            "-m",
            "govbus.audit.process",
            str(child_sock.fileno()),
            str(abort_read),
            self._node,
        ]
        try:
            popen = subprocess.Popen(
                command,
                pass_fds=(child_sock.fileno(), abort_read),
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            parent_sock.close()
            child_sock.close()
            os.close(abort_read)
            os.close(abort_write)
            raise
        proc = _ChildProcess(popen)
        child_sock.close()  # so the child's exit is an EOF on our end
        os.close(abort_read)
        parent_conn = _PipeConnection(parent_sock.detach())
        abort_writer = _PipeConnection(abort_write, readable=False)
        # Configuration travels over the socket, not argv: a database URL may hold a password.
        parent_conn.send((self._url, self._node, self._write_timeout))
        try:
            reply = self._await_ready(parent_conn, proc)
        except BaseException:
            parent_conn.close()
            abort_writer.close()
            _reap(proc, 5.0)
            raise
        _log.debug("audit writer process %d ready for chain %r at %s", proc.pid, *reply[1:])
        self._process, self._conn, self._child_abort = proc, parent_conn, abort_writer
        # If close() is forgotten, stop the child before multiprocessing joins it at exit
        # (it would otherwise wait on our pipe forever); priority >= 0 runs first.
        self._finalizer = multiprocessing.util.Finalize(
            self, _reap, args=(proc, 0.0), exitpriority=10
        )
        self._reader_thread = threading.Thread(
            target=self._read_forever,
            name=f"govbus-audit-reader[{self._node}]",
            daemon=True,
        )

    def _await_ready(self, conn: Any, proc: Any) -> tuple[Any, ...]:
        deadline = time.monotonic() + _PROCESS_START_TIMEOUT
        while not conn.poll(0.05):
            if proc.exitcode is not None and not conn.poll():
                raise AuditError(
                    f"audit writer process for {self._where} exited with code {proc.exitcode} "
                    "before it was ready"
                )
            if time.monotonic() > deadline:
                raise AuditUnavailableError(
                    f"audit writer process for {self._where} was not ready within "
                    f"{_PROCESS_START_TIMEOUT:g}s"
                )
        try:
            reply: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError) as exc:
            raise AuditError(
                f"audit writer process for {self._where} exited before it was ready"
            ) from exc
        if reply[0] == "error":
            error_type = _STARTUP_ERRORS.get(reply[1], AuditError)
            raise error_type(reply[2])
        return reply

    def _feed_forever(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        while True:
            wakeup.wait(self._flush_interval)
            wakeup.clear()
            while self._batch_due() and not self._abort.is_set() and self._dead is None:
                self._send_batch()
            if self._abort.is_set() or self._dead is not None:
                self._abandon()
                return
            if self._stopping and not queue:
                return

    def _send_batch(self) -> None:
        from govbus.audit.process import encode_batch

        events, waiters = self._take_batch()
        with self._pending_lock:
            if self._dead is not None:
                self._uncommitted += len(events)
                self._finish_waiters(waiters, AuditUnavailableError(self._dead))
                return
            if not events:
                if self._pending:
                    # Waiters only: they are done when the last batch sent before them is.
                    self._pending[next(reversed(self._pending))][1].extend(waiters)
                else:
                    self._finish_waiters(waiters, None)
                return
            self._next_batch += 1
            batch_id = self._next_batch
            self._pending[batch_id] = [len(events), waiters]
        payload = encode_batch(batch_id, events)
        # A dead child shows up as EOF in the reader thread, which fails this batch's waiters.
        with contextlib.suppress(OSError):
            self._conn.send_bytes(payload)

    def _read_forever(self) -> None:
        conn = self._conn
        try:
            while True:
                reply = conn.recv()
                kind = reply[0]
                if kind == "committed":
                    with self._pending_lock:
                        _, waiters = self._pending.pop(reply[1])
                    self._last_error = None
                    self._progress += 1
                    self._finish_waiters(waiters, None)
                elif kind == "failed":
                    with self._pending_lock:
                        count, waiters = self._pending.pop(reply[1])
                        self._uncommitted += count
                    self._last_error = reply[2]
                    self._finish_waiters(waiters, self._abandon_error())
                elif kind == "error":
                    self._last_error = reply[1]
                elif kind == "log":
                    # The child's warnings (retries, re-chaining) belong in our logs.
                    logging.getLogger(reply[1]).log(reply[2], "%s", reply[3])
                elif kind == "closed":
                    return
        except (EOFError, OSError):
            pass
        self._on_child_exit()

    def _on_child_exit(self) -> None:
        """The child is gone without being asked to close: fail closed."""
        with self._process_lock:
            self._process.join(1.0)
            code = self._process.exitcode
        queued = sum(1 for item in list(self._queue) if type(item) is not _Waiter)
        with self._pending_lock:
            lost = list(self._pending.values())
            self._pending.clear()
            in_flight = sum(count for count, _ in lost)
            self._uncommitted += in_flight
            self._dead = (
                f"audit writer process exited with code {code}; "
                f"{in_flight + queued} events not committed"
            )
        self._accepting = False
        _log.error("%s (chain %r at %s)", self._dead, self._node, self._where)
        error = AuditUnavailableError(self._dead)
        self._finish_waiters([w for _, waiters in lost for w in waiters], error)
        self._wakeup.set()  # the feeder fails what is still queued, then exits

    def _stop_process(self) -> None:
        """Stop the feeder, ask the child to finish and exit, and reap it (bounded)."""
        bound = self._write_timeout + 5.0
        if self._thread is not None:
            self._thread.join(bound)
        if self._dead is None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(b"C")  # govbus.audit.process.CLOSE
        with self._process_lock:
            if not _reap(self._process, bound):
                _log.error("audit writer process for %s did not exit; killed it", self._where)
        for thread in (self._reader_thread, self._thread):
            if thread is not None:
                thread.join(5.0)
        with self._pending_lock:
            # Killed with batches in flight: the reader counted them, unless it never ran.
            self._uncommitted += sum(count for count, _ in self._pending.values())
            self._pending.clear()
        if self._finalizer is not None:
            self._finalizer.cancel()
        self._conn.close()
        self._child_abort.close()
        self._process.close()
        self._process = None

    # -- reading --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Engine]:
        """Yield the engine to read with: the writer's, else a reader made on first use.

        After :meth:`close` a temporary engine, so records stay readable (as in memory).
        """
        if self._engine is not None:
            yield self._engine
        elif self._state != "closed":
            if self._reader is None:
                self._reader = await asyncio.to_thread(_reading_engine, self._url)
            yield self._reader
        else:
            engine = await asyncio.to_thread(_reading_engine, self._url)
            try:
                yield engine
            finally:
                engine.dispose()

    async def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        """Stored records ordered by node then sequence, read page by page in a thread.

        Works without :meth:`start` (read-only use) and after :meth:`close`.

        Args:
            node: only this chain's records.
        """
        after: _PageKey | None = None
        async with self._reading() as engine:
            try:
                await asyncio.to_thread(_require_tables, engine, self._where)
                while True:
                    rows = await asyncio.to_thread(
                        _fetch_page, engine, node, after, self._page_size
                    )
                    for row in rows:
                        yield row_to_record(row)
                    if len(rows) < self._page_size:
                        return
                    last = rows[-1]
                    after = (last["node"], int(last["seq"]), int(last["id"]))
            except SQLAlchemyError as exc:
                raise _db_error("read", self._where, exc, self._sqlite) from exc

    async def verify(self, *, node: str | None = None) -> VerifyReport:
        """Recompute every chain (or one) and compare with the heads; constant memory.

        Works without :meth:`start` and after :meth:`close`. Records still queued are not
        included: ``flush`` first to verify everything written so far.

        Args:
            node: verify only this chain.
        """
        async with self._reading() as engine:
            try:
                await asyncio.to_thread(_require_tables, engine, self._where)
                return await asyncio.to_thread(_verify_engine, engine, node, self._page_size)
            except SQLAlchemyError as exc:
                raise _db_error("read", self._where, exc, self._sqlite) from exc
