"""The synchronous writer core: open the database, seal batches into one node's chain, insert.

No asyncio here: the writer thread (:class:`~govbus.audit.sql.SqlAuditStore`) and the writer
process (:mod:`govbus.audit.process`) both drive a :class:`ChainWriter`, so the retry,
re-chaining and coercion rules exist once.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from govbus.audit.base import GENESIS_HASH, AuditEvent
from govbus.audit.chain import chain_row
from govbus.audit.database import (
    InsertRows,
    audit_heads,
    audit_records,
    batch_insert,
    db_error,
    describe_url,
    make_engine,
    migrate,
    read_heads,
    short_error,
)
from govbus.errors import AuditError, AuditUnavailableError, ChainBrokenError

_log = logging.getLogger("govbus.audit")

# --------------------------------------------------------------------------------------------
# The synchronous writer core (shared by the writer thread and the writer process)


class ChainConflictError(Exception):
    """The head row moved under us: another process appended to this node's chain."""


class _Abort(Protocol):
    """What the writer core needs of an abort flag: a ``threading.Event`` in the writer thread,
    a pipe-backed flag in the writer process."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


def _no_spool(rows: list[dict[str, Any]], error: BaseException) -> bool:
    return False


def _ignore(error: str) -> None:
    return None


class RowSpool:
    """Sealed rows waiting for the database, oldest first, in a local JSONL file.

    Rows are appended (one ``write`` and an ``fsync`` per batch) when a batch has failed for half
    of ``write_timeout``; they already carry their sequence numbers and hashes, so inserted
    later in the same order they continue the chain exactly. The file holds what the database
    would hold (payload hashes, never payload bytes). A torn last line (a crash mid-append) is
    dropped with a warning: its batch was never acknowledged.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise AuditError(f"cannot read audit spool {self.path}: {exc.strerror}") from exc
        lines = text.split("\n")
        rows = []
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                if number == len(lines):  # no trailing newline: a torn append
                    _log.warning("audit spool %s: dropping a torn last line", self.path)
                    break
                raise AuditError(f"audit spool {self.path}:{number}: not a row ({exc})") from exc
        return rows

    def append(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` durably.

        Raises:
            AuditUnavailableError: the spool cannot be written (then nothing is acknowledged:
                the database is down and so is the spool, so writes fail closed).
        """
        data = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise AuditUnavailableError(
                f"the audit database is down and the spool {self.path} cannot be written: "
                f"{exc.strerror or exc}"
            ) from exc

    def keep(self, rows: Sequence[dict[str, Any]]) -> None:
        """Replace the spool's contents with ``rows`` (what is still to insert), atomically."""
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        temp = self.path.with_suffix(self.path.suffix + ".tmp")
        temp.write_text(
            "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows),
            encoding="utf-8",
        )
        os.replace(temp, self.path)


class ChainWriter:
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
        spool: a file for sealed rows while the database is down (:class:`RowSpool`); later
            batches follow them into the spool until every spooled row is inserted, in order.
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
        spool: Path | None = None,
    ) -> None:
        self.url = url
        self.spool = RowSpool(spool) if spool is not None else None
        #: Rows in the spool, not yet in the database.
        self.spooled: list[dict[str, Any]] = []
        self._spool_error: str | None = None
        self.where = describe_url(url)
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
        self._insert_rows: InsertRows | None = None

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
        engine = make_engine(url)
        try:
            migrate(engine, self.where)
            with engine.connect() as conn:
                head = read_heads(conn, self.node).get(self.node)
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
            raise db_error("open", self.where, exc, self.sqlite) from exc
        except BaseException:
            engine.dispose()
            raise
        if head is not None:
            self.seq, self.hash = head
        self._insert_rows = batch_insert(engine)
        self.engine = engine
        if self.spool is not None:
            self.spooled = self.spool.load()
            if self.spooled:  # left by an earlier run: this chain continues after them
                last = self.spooled[-1]
                self.seq, self.hash = last["seq"], last["hash"]
                self._drain()
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
        """Seal and insert one batch, retrying until it is committed (or, with a spool, until
        it is spooled); False if aborted."""
        seq, prev = self.seq, self.hash
        rows = self._prepare(events, seq, prev)
        while self.spooled and not self._drain():
            # Order: nothing may overtake the spooled rows, so this batch follows them.
            if self._try_spool(rows):
                return True
            if self.abort.wait(0.25):  # spool and database both refuse: writes fail closed
                return False
        failing_since: float | None = None
        attempt = 0
        coerced = False
        while True:
            try:
                self._insert(rows, seq, prev)
                break
            except (IntegrityError, ChainConflictError) as exc:
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
            if not coerced and not isinstance(error, OperationalError | ChainConflictError):
                # Not the connection but a value the database refuses (PostgreSQL takes no NUL
                # in text): retrying as is would stall the log forever. Seal the batch again
                # with every field coerced and cleaned; nothing of it was committed.
                _log.warning(
                    "audit batch refused by %s (%s); coercing", self.where, short_error(error)
                )
                coerced = True
                rows = self._prepare(events, seq, prev, coerce=True)
                continue
            self.last_error = short_error(error)
            self.on_error(self.last_error)
            now = time.monotonic()
            if failing_since is None:
                failing_since = now
                _log.warning("audit write to %s failed, retrying: %s", self.where, self.last_error)
            # With a spool, a failing batch is spooled at half of write_timeout, well before
            # waiters on write()/flush() give up at write_timeout without progress.
            if (
                self.spool is not None
                and now - failing_since >= self.write_timeout / 2
                and self._try_spool(rows)
            ):
                _log.warning(
                    "audit database %s down for %.1fs: spooling to %s until it is back",
                    self.where,
                    now - failing_since,
                    self.spool.path,
                )
                break
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

    def _try_spool(self, rows: list[dict[str, Any]]) -> bool:
        """Append ``rows`` to the spool and move the chain's position past them; False (logged,
        and told to waiters through ``on_error``) when the spool cannot be written either."""
        assert self.spool is not None
        try:
            self.spool.append(rows)
        except AuditUnavailableError as exc:
            if exc.message != self._spool_error:  # once per distinct failure, not per retry
                _log.error("%s", exc.message)
            self._spool_error = exc.message
            self.last_error = f"{self.last_error or 'database down'}; {exc.message}"
            self.on_error(self.last_error)
            return False
        self._spool_error = None
        self.spooled.extend(rows)
        last = rows[-1]
        self.seq, self.hash = last["seq"], last["hash"]
        return True

    def _drain(self, chunk: int = 1000) -> bool:
        """Insert the spooled rows, oldest first, in transactions of ``chunk``; True when the
        spool is empty. Stops at the first failure (the database is still down)."""
        assert self.spool is not None
        while self.spooled:
            try:
                head = self._read_head()
            except SQLAlchemyError:
                return False
            if head is not None:  # rows an earlier attempt inserted (its ack was lost)
                done = [i for i, row in enumerate(self.spooled) if row["seq"] <= head[0]]
                if done:
                    self.spooled = self.spooled[done[-1] + 1 :]
                    self.spool.keep(self.spooled)
                    continue
            batch = self.spooled[:chunk]
            first = batch[0]
            try:
                self._insert(batch, first["seq"] - 1, first["prev_hash"])
            except (SQLAlchemyError, ChainConflictError) as exc:
                self.last_error = short_error(exc)
                return False
            self.spooled = self.spooled[len(batch) :]
            self.spool.keep(self.spooled)
            if not self.spooled:
                _log.warning("audit database %s is back: spool %s replayed", self.where,
                             self.spool.path)  # fmt: skip
        return True

    def _read_head(self) -> tuple[int, str] | None:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return read_heads(conn, self.node).get(self.node)

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
                    raise ChainConflictError(self.node)

    def _head_or_none(self) -> tuple[int, str] | None:
        assert self.engine is not None
        try:
            with self.engine.connect() as conn:
                return read_heads(conn, self.node).get(self.node)
        except SQLAlchemyError:
            return None
