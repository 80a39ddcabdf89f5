"""The audit database: schema and migrations, URLs and engines, and reading the chains back.

Schema (SQLAlchemy Core, portable SQL)::

    audit_schema_version(version)
    audit_records(id PK, node, seq, ts, kind, outcome, message_id, correlation_id, msg_type,
                  sender, recipient, policy_sha256, data, prev_hash, hash; UNIQUE(node, seq))
    audit_heads(node PK, seq, hash)        -- the last record of each chain
    audit_checkpoints(node PK, seq, hash, ts, generation, pruned_at)   -- since version 2:
                                           -- where a pruned chain starts (govbus audit prune)

``ts`` is stored as the canonical RFC 3339 text the hash covers (it sorts chronologically), and
``data`` as the canonical JSON text, so what is stored is exactly what was hashed. Reading
(``verify_url``, ``count_url``, ``iter_records_url``) needs no writer and never creates a file;
it reads a version 1 database as it is (no checkpoints).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import operator
import os
import sqlite3
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, RowMapping
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from govbus.audit.base import AuditCheckpoint, AuditRecord, VerifyReport
from govbus.audit.chain import (
    RECORD_COLUMNS,
    ChainVerifier,
    row_to_record,
)
from govbus.dburl import describe_db_url, lock_schema, normalize_db_url
from govbus.errors import AuditError, AuditUnavailableError

__all__ = [
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "count_url",
    "iter_records_url",
    "normalize_url",
    "verify_url",
]

_log = logging.getLogger("govbus.audit")

DEFAULT_URL: Final = "sqlite:///.govbus/audit.db"

# --------------------------------------------------------------------------------------------
# Schema and migrations

#: The schema version this code writes. Bump it together with a new entry in ``_MIGRATIONS``.
SCHEMA_VERSION: Final = 2

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

# Version 2. One row per pruned chain, moved forward by each prune step (never deleted): records
# 1..seq of the chain are gone, and record seq + 1 chains onto ``hash``. ``generation`` numbers
# prune steps across the store; the audit_prune record each step writes holds a digest of the
# whole table (govbus.audit.chain.checkpoints_digest).
audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("node", sa.String, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String, nullable=False),
    sa.Column("ts", sa.String, nullable=False),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("pruned_at", sa.String, nullable=False),
)

_RECORD_COLUMNS: Final = RECORD_COLUMNS


def _create_v1(conn: Connection) -> None:
    # Version 2 left these two tables as they were, so their objects above are still version 1's
    # DDL. When a later version changes them, freeze this step's DDL here so old databases
    # still migrate step by step.
    audit_records.create(conn, checkfirst=True)
    audit_heads.create(conn, checkfirst=True)


def _add_checkpoints_v2(conn: Connection) -> None:
    # Additive: version 1 writers never touch this table, and readers of either version read
    # the records as before.
    audit_checkpoints.create(conn, checkfirst=True)


#: ``_MIGRATIONS[n - 1]`` brings a database from version ``n - 1`` to ``n``. Append; never edit.
_MIGRATIONS: Final[tuple[Callable[[Connection], None], ...]] = (_create_v1, _add_checkpoints_v2)


InsertRows = Callable[[Connection, list[dict[str, Any]]], None]
_row_values = operator.itemgetter(*_RECORD_COLUMNS)


def batch_insert(engine: Engine) -> InsertRows:
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


def migrate(engine: Engine, where: str) -> None:
    """Create the schema or bring it up to :data:`SCHEMA_VERSION`, in one transaction."""
    with engine.begin() as conn:
        lock_schema(conn, "govbus.audit")
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
    """Turn a database URL or a bare file path into the URL the store connects to (see
    :func:`govbus.dburl.normalize_db_url`).

    Raises:
        AuditError: the URL is empty, cannot be parsed, or names an in-memory SQLite database
            (each connection would see its own empty database; use ``MemoryAuditStore``).

    Example:
        >>> normalize_url("postgresql://u@db/audit").drivername
        'postgresql+psycopg'
    """
    return normalize_db_url(
        url,
        what="audit database",
        error=AuditError,
        memory_hint="use a file path or MemoryAuditStore",
    )


describe_url = describe_db_url


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


def make_engine(url: URL, *, writer: bool = True) -> Engine:
    if url.get_backend_name() == "sqlite":
        # A generous busy timeout: several processes (one chain each) may share one file. A
        # ``?timeout=`` in the URL overrides it.
        connect_args = {} if "timeout" in url.query else {"timeout": 30.0}
        engine = sa.create_engine(url, connect_args=connect_args)
        if writer:  # switching to WAL is a write; a reader may look at a read-only copy
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url)


def reading_engine(url: URL) -> Engine:
    """An engine for reading only: never creates a SQLite file or directory."""
    sqlite_file = url.get_backend_name() == "sqlite" and not url.query.get("uri")
    if sqlite_file and url.database and not os.path.exists(url.database):
        raise AuditError(f"no audit database at {url.database}")
    return make_engine(url, writer=False)


def short_error(exc: BaseException) -> str:
    """The driver's own message (no SQL, no parameters), for errors and logs."""
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"


def db_error(action: str, where: str, exc: SQLAlchemyError, sqlite: bool) -> AuditError:
    detail = getattr(exc, "orig", None) or exc
    message = f"cannot {action} audit database at {where}: {detail}"
    # A server that is down may come back; a SQLite file we cannot open will not.
    if isinstance(exc, OperationalError) and not sqlite:
        return AuditUnavailableError(message)
    return AuditError(message)


# --------------------------------------------------------------------------------------------
# Reading (shared by the store, verify_url and the CLI)


def read_heads(conn: Connection, node: str | None) -> dict[str, tuple[int, str]]:
    stmt = sa.select(audit_heads.c.node, audit_heads.c.seq, audit_heads.c.hash)
    if node is not None:
        stmt = stmt.where(audit_heads.c.node == node)
    return {row.node: (int(row.seq), row.hash) for row in conn.execute(stmt)}


def has_checkpoints_table(conn: Connection) -> bool:
    """Whether the database is at schema version 2 or later (a reader never migrates)."""
    return sa.inspect(conn).has_table(audit_checkpoints.name)


def read_checkpoints(conn: Connection, node: str | None) -> dict[str, AuditCheckpoint] | None:
    """Every chain's checkpoint (or ``node``'s); None for a version 1 database (no table)."""
    if not has_checkpoints_table(conn):
        return None
    c = audit_checkpoints.c
    stmt = sa.select(c.node, c.seq, c.hash, c.ts, c.generation, c.pruned_at)
    if node is not None:
        stmt = stmt.where(c.node == node)
    return {
        row.node: AuditCheckpoint(
            node=row.node,
            seq=int(row.seq),
            hash=row.hash,
            ts=row.ts,
            generation=int(row.generation),
            pruned_at=row.pruned_at,
        )
        for row in conn.execute(stmt)
    }


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[tuple[Connection, bool]]:
    """A connection whose reads all see one snapshot of the database, and whether they do.

    SQLite: one read transaction (``BEGIN``; in WAL mode writers go on meanwhile). PostgreSQL:
    a ``REPEATABLE READ`` transaction. Heads, checkpoints and records read through it agree, even
    while writers append and a prune deletes. Other databases: a plain connection (False).
    """
    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
            consistent = True
        elif backend == "sqlite":
            raw: Any = conn.connection.driver_connection
            if not raw.in_transaction:
                conn.exec_driver_sql("BEGIN")
            consistent = True
        else:
            consistent = False
        try:
            yield conn, consistent
        finally:
            conn.rollback()


def stream_rows(
    conn: Connection, stmt: sa.Select[Any], batch: int
) -> Generator[list[Any], None, None]:
    """Run ``stmt`` and yield its rows as plain tuples, ``batch`` at a time, in constant memory.

    On SQLite and PostgreSQL (psycopg) this goes straight to the driver's cursor, a server-side
    one on PostgreSQL, inside ``conn``'s transaction: no per-row objects beyond the tuples.
    Elsewhere SQLAlchemy streams the result. Driver errors are raised as SQLAlchemy's.
    """
    dialect = conn.dialect
    backend, driver = dialect.name, dialect.driver
    direct_sqlite = backend == "sqlite" and driver == "pysqlite" and dialect.paramstyle == "qmark"
    direct_pg = backend == "postgresql" and driver == "psycopg"
    if not (direct_sqlite or direct_pg):
        result = conn.execution_options(stream_results=True, yield_per=batch).execute(stmt)
        for part in result.partitions(batch):
            yield [tuple(row) for row in part]
        return
    compiled = stmt.compile(dialect=dialect)
    sql = str(compiled)
    raw: Any = conn.connection.driver_connection
    dbapi_error = dialect.loaded_dbapi.Error
    params: Any
    if direct_sqlite:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        cursor = raw.cursor()
    else:
        params = compiled.params
        cursor = raw.cursor(name=f"govbus_audit_{uuid.uuid4().hex[:12]}")
        cursor.itersize = batch
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(batch):
            yield rows
    except dbapi_error as exc:
        # Bypassing SQLAlchemy, so do what it would: drop a dead connection from the pool and
        # raise its exception classes (callers turn them into AuditError naming the database).
        if getattr(raw, "closed", False):
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi_error, dialect=dialect) from exc
    finally:
        with contextlib.suppress(Exception):  # already gone with a dead connection
            cursor.close()


_RECORD_SELECT: Final = sa.select(*(audit_records.c[name] for name in _RECORD_COLUMNS))


def select_records(node: str | None = None) -> sa.Select[Any]:
    """The records as :data:`RECORD_COLUMNS` tuples in chain order (node, seq)."""
    c = audit_records.c
    stmt = _RECORD_SELECT.order_by(c.node, c.seq, c.id)
    return stmt if node is None else stmt.where(c.node == node)


def count_records(conn: Connection, node: str | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(audit_records)
    if node is not None:
        stmt = stmt.where(audit_records.c.node == node)
    return int(conn.execute(stmt).scalar_one())


PageKey = tuple[str, int, int]
_SELECT_RECORDS = sa.select(
    *(audit_records.c[name] for name in _RECORD_COLUMNS), audit_records.c.id
)


def fetch_page(
    engine: Engine, node: str | None, after: PageKey | None, limit: int
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


def require_tables(engine: Engine, where: str) -> None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("audit_records"):
            raise AuditError(f"no audit records at {where} (the audit_records table is missing)")


def _iter_rows(engine: Engine, node: str | None, page_size: int) -> Iterator[RowMapping]:
    after: PageKey | None = None
    while True:
        rows = fetch_page(engine, node, after, page_size)
        yield from rows
        if len(rows) < page_size:
            return
        last = rows[-1]
        after = (last["node"], int(last["seq"]), int(last["id"]))


#: Rows per fetch when verifying: big enough that the per-fetch cost disappears.
VERIFY_BATCH: Final = 10_000


def verify_engine(
    engine: Engine,
    node: str | None,
    page_size: int = VERIFY_BATCH,
    *,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Stream every record through a :class:`ChainVerifier` (constant memory).

    Heads, checkpoints and records are read in one snapshot (see :func:`snapshot`), so a writer
    appending or a prune deleting meanwhile cannot make an intact store look broken. A large
    SQLite store is first verified on several cores (:mod:`govbus.audit.parallel`); only an
    intact result is taken from there, anything else is verified here, serially.

    Args:
        node: verify only this chain. The checkpoints are then not checked against the
            ``audit_prune`` records, which live in other chains.
        page_size: rows per fetch.
        progress: called as ``progress(done, total)`` after each fetch (and once before the
            first, with ``done`` 0); ``total`` is counted first, in the same snapshot (from the
            heads, when verifying in parallel).
        workers: processes for a large SQLite store; None: one per core (at most 8); 1: serial.
    """
    if node is None and engine.dialect.name == "sqlite" and workers != 1:
        from govbus.audit.parallel import PARALLEL_MIN_RECORDS, default_workers, verify_parallel

        with snapshot(engine) as (conn, _):
            heads = read_heads(conn, None)
            checkpoints = read_checkpoints(conn, None)
        starts = checkpoints or {}
        estimate = sum(
            seq - (starts[n].seq if n in starts else 0) for n, (seq, _h) in heads.items()
        )
        count = workers if workers is not None else default_workers()
        if count > 1 and estimate >= PARALLEL_MIN_RECORDS:
            report = verify_parallel(
                engine.url,
                heads,
                checkpoints,
                workers=count,
                page_size=page_size,
                progress=progress,
            )
            if report is not None:
                return report
    with snapshot(engine) as (conn, consistent):
        # Without one snapshot, heads first: a live writer may append after this, so chains
        # may run past their heads but never stop short of them.
        heads = read_heads(conn, node)
        checkpoints = read_checkpoints(conn, node)
        verifier = ChainVerifier(heads, checkpoints, attest=node is None)
        total = count_records(conn, node) if progress is not None else 0
        if progress is not None:
            progress(0, total)
        done = 0
        for rows in stream_rows(conn, select_records(node), page_size):
            ok = verifier.add_rows(rows)
            done += len(rows)
            if progress is not None:
                progress(done, total)
            if not ok:
                break
    late: dict[str, tuple[int, str]] = {}
    headless = verifier.nodes_without_head()
    if headless and not verifier.broken and not consistent:
        # A chain that started after the heads were read has a head by now; a chain whose
        # head row was deleted still has none.
        with engine.connect() as conn:
            late = {n: h for n, h in read_heads(conn, node).items() if n in headless}
    return verifier.finish(late_heads=late)


def verify_url(
    url: str | URL = DEFAULT_URL,
    *,
    node: str | None = None,
    page_size: int = VERIFY_BATCH,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify every chain (or one) in the audit database at ``url``; synchronous.

    Used by ``govbus audit verify [URL]``. Streams the records in one snapshot, so memory stays
    constant and it is safe to run while writers append or a prune deletes. A pruned chain
    starts at its checkpoint; the checkpoints must match the newest ``audit_prune`` record.

    Args:
        url: a SQLAlchemy URL or a SQLite file path.
        node: verify only this chain.
        page_size: records per fetch.
        progress: called as ``progress(done, total)`` as records are verified.
        workers: processes for a large SQLite store (see :func:`verify_engine`); 1: serial.

    Raises:
        AuditError: no database or no audit tables at ``url``, or it cannot be read.
    """
    target = normalize_url(url)
    where = describe_url(target)
    engine = reading_engine(target)
    try:
        require_tables(engine, where)
        return verify_engine(engine, node, page_size, progress=progress, workers=workers)
    except SQLAlchemyError as exc:
        raise db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()


def count_url(url: str | URL = DEFAULT_URL, *, node: str | None = None) -> int:
    """Return how many audit records the database at ``url`` holds (for ``node`` only if given)."""
    target = normalize_url(url)
    where = describe_url(target)
    engine = reading_engine(target)
    try:
        require_tables(engine, where)
        stmt = sa.select(sa.func.count()).select_from(audit_records)
        if node is not None:
            stmt = stmt.where(audit_records.c.node == node)
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    except SQLAlchemyError as exc:
        raise db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()


def iter_records_url(
    url: str | URL = DEFAULT_URL, *, node: str | None = None, page_size: int = 1000
) -> Iterator[AuditRecord]:
    """Yield the records at ``url`` ordered by node then sequence, reading page by page."""
    target = normalize_url(url)
    where = describe_url(target)
    engine = reading_engine(target)
    try:
        require_tables(engine, where)
        for row in _iter_rows(engine, node, page_size):
            yield row_to_record(row)
    except SQLAlchemyError as exc:
        raise db_error("read", where, exc, target.get_backend_name() == "sqlite") from exc
    finally:
        engine.dispose()
