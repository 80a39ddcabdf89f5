"""Dead-letter stores: where messages go that could not be handled, so they can be replayed.

A *dead letter* is a message that exhausted its subscription's ``max_attempts``, or that its
handler gave up on (``term``), kept together with where it was going, which subscription failed
it, how many attempts were made and why (:class:`~govbus.bus.base.DeadLetter`). An operator
lists them, inspects one, replays it and removes it.

Two stores implement :class:`DeadLetterStore`:

* :class:`MemoryDeadLetterStore` keeps the newest entries in the process (tests, demos).
* :class:`SqlDeadLetterStore` keeps them in a SQLite file or a PostgreSQL database, so they
  survive a restart and another process (``govbus dlq``) can read them while the app writes.

Entries are addressed by their entry id, or by a unique prefix of at least
:data:`MIN_PREFIX` characters (as with git commits).

Every store holds the FULL envelope of each message (payload, actor, metadata), because that
is what a replay needs, so access to a dead-letter store must be restricted exactly like access
to the bus itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, RowMapping
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from govbus.bus.base import DeadLetter
from govbus.dburl import describe_db_url, lock_schema, normalize_db_url
from govbus.envelope import Message
from govbus.errors import DeadLetterError, DeadLetterNotFoundError, GovbusError

__all__ = [
    "MIN_PREFIX",
    "TABLE_NAME",
    "DeadLetterStore",
    "MemoryDeadLetterStore",
    "SqlDeadLetterStore",
    "open_dead_letters",
]

#: The shortest id prefix :meth:`DeadLetterStore.get` and ``remove`` accept.
MIN_PREFIX: Final = 6

#: The table :class:`SqlDeadLetterStore` keeps its entries in.
TABLE_NAME: Final = "govbus_dead_letters"

#: The longest entry id :class:`SqlDeadLetterStore` stores (``new_id()`` makes 36 characters).
MAX_ID_LENGTH: Final = 40

_T = TypeVar("_T")


@runtime_checkable
class DeadLetterStore(Protocol):
    """Where dead letters are kept until an operator replays or removes them."""

    @property
    def where(self) -> str:
        """Where the store is, for messages: ``"memory"``, a SQLite file path, or a database
        URL with the password hidden."""
        ...

    async def put(self, letter: DeadLetter) -> None:
        """Keep ``letter``.

        Raises:
            DeadLetterError: it cannot be stored (an entry with its id exists, the database
                cannot be written, ``at`` has no timezone).
        """

    async def entries(self, *, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first (by ``at``, then id); with ``limit``, the oldest
        ``limit`` of them."""
        ...

    async def get(self, id: str) -> DeadLetter:
        """The entry with this exact id, or the only one whose id starts with ``id`` (at least
        :data:`MIN_PREFIX` characters).

        Raises:
            DeadLetterNotFoundError: no entry matches, or the prefix matches several.
        """
        ...

    async def remove(self, id: str) -> DeadLetter:
        """Remove the entry :meth:`get` would return, and return it (same lookup rules)."""
        ...

    async def count(self) -> int:
        """How many dead letters the store holds."""
        ...

    async def close(self) -> None:
        """Release the store's resources. Idempotent; the store refuses use afterwards."""


# --------------------------------------------------------------------------------------------
# Shared rules


def _checked(letter: DeadLetter) -> DeadLetter:
    """``letter`` with ``at`` in UTC; a naive ``at`` is refused (its instant is unknown)."""
    if letter.at.tzinfo is None or letter.at.utcoffset() is None:
        raise DeadLetterError(
            f"dead letter {letter.id} has a timestamp without a timezone ({letter.at}); "
            "use an aware UTC datetime such as datetime.now(UTC)"
        )
    if letter.at.tzinfo is UTC:
        return letter
    return dataclasses.replace(letter, at=letter.at.astimezone(UTC))


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")


def _sort_key(letter: DeadLetter) -> tuple[datetime, str]:
    return (letter.at, letter.id)


def _not_found(id: str, where: str) -> DeadLetterNotFoundError:
    return DeadLetterNotFoundError(f"no dead letter with id {id!r} in {where}")


def _too_short(id: str, where: str) -> DeadLetterNotFoundError:
    return DeadLetterNotFoundError(
        f"no dead letter with id {id!r} in {where} (an id prefix needs at least "
        f"{MIN_PREFIX} characters)"
    )


def _ambiguous(id: str, where: str, matches: int) -> DeadLetterNotFoundError:
    return DeadLetterNotFoundError(
        f"dead letter id prefix {id!r} is ambiguous in {where}: {matches} entries match; "
        "give more characters"
    )


def _missing(id: str, where: str) -> DeadLetterNotFoundError:
    """The error for an id that matched nothing (saying so when it is too short a prefix)."""
    return _not_found(id, where) if len(id) >= MIN_PREFIX else _too_short(id, where)


def _pick(id: str, where: str, matching: Sequence[_T]) -> _T:
    """The one entry a prefix lookup found, or the right error."""
    if not matching:
        raise _not_found(id, where)
    if len(matching) > 1:
        raise _ambiguous(id, where, len(matching))
    return matching[0]


# --------------------------------------------------------------------------------------------
# In memory


class MemoryDeadLetterStore:
    """Dead letters in this process: the newest ``limit`` are kept, ``total`` counts all.

    Args:
        limit: how many entries to keep; putting one more forgets the oldest.

    Attributes:
        total: every dead letter ever put, including the ones forgotten since.

    Example:
        >>> import asyncio
        >>> from datetime import UTC, datetime
        >>> from govbus.envelope import Message
        >>> store = MemoryDeadLetterStore(limit=100)
        >>> message = Message(type="task.do", sender="web", to="worker")
        >>> letter = DeadLetter(message, "worker", "worker", 5, "boom", datetime.now(UTC))
        >>> async def demo() -> tuple[bool, int]:
        ...     await store.put(letter)
        ...     found = await store.get(letter.id[:8])  # a unique prefix is enough
        ...     return found == letter, await store.count()
        >>> asyncio.run(demo())
        (True, 1)
    """

    def __init__(self, limit: int = 10_000) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.total = 0
        # Insertion ordered: the first key is the oldest put, the one to forget first. A dict
        # rather than a deque(maxlen) so an exact id is found (and a duplicate refused) at once.
        self._letters: dict[str, DeadLetter] = {}
        self._closed = False

    @property
    def where(self) -> str:
        return "memory"

    def _check_open(self) -> None:
        if self._closed:
            raise DeadLetterError("the in-memory dead-letter store is closed")

    def _find(self, id: str) -> DeadLetter:
        self._check_open()
        exact = self._letters.get(id)
        if exact is not None:
            return exact
        if len(id) < MIN_PREFIX:
            raise _too_short(id, self.where)
        return _pick(id, self.where, [v for k, v in self._letters.items() if k.startswith(id)])

    async def put(self, letter: DeadLetter) -> None:
        self._check_open()
        letter = _checked(letter)
        if letter.id in self._letters:
            raise DeadLetterError(f"a dead letter with id {letter.id} is already stored")
        self._letters[letter.id] = letter
        self.total += 1
        while len(self._letters) > self.limit:
            del self._letters[next(iter(self._letters))]

    async def entries(self, *, limit: int | None = None) -> list[DeadLetter]:
        self._check_open()
        _check_limit(limit)
        ordered = sorted(self._letters.values(), key=_sort_key)
        return ordered if limit is None else ordered[:limit]

    async def get(self, id: str) -> DeadLetter:
        return self._find(id)

    async def remove(self, id: str) -> DeadLetter:
        letter = self._find(id)
        del self._letters[letter.id]
        return letter

    async def count(self) -> int:
        self._check_open()
        return len(self._letters)

    async def close(self) -> None:
        self._closed = True


# --------------------------------------------------------------------------------------------
# SQL (SQLite file or PostgreSQL)


class _UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out, on every backend.

    SQLite keeps no offset, so the value is stored as naive UTC (fixed-width text, which sorts
    chronologically) and read back as UTC; PostgreSQL's ``timestamptz`` comes back in the
    session's time zone and is converted.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        # A driver that hands back text rather than a datetime is parsed.
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


_metadata = sa.MetaData()

_table = sa.Table(
    TABLE_NAME,
    _metadata,
    sa.Column("id", sa.String(MAX_ID_LENGTH), primary_key=True),
    sa.Column("at", _UtcDateTime(), nullable=False, index=True),
    sa.Column("subscription", sa.String, nullable=False),
    sa.Column("address", sa.String, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    # Message.id may be up to 128 characters long.
    sa.Column("message_id", sa.String(128), nullable=False, index=True),
    sa.Column("msg_type", sa.String(255), nullable=False),
    # The full envelope as its wire JSON: what a replay publishes again.
    sa.Column("message", sa.Text, nullable=False),
)


def _normalize_url(url: str) -> URL:
    """The URL a :class:`SqlDeadLetterStore` connects to (see
    :func:`govbus.dburl.normalize_db_url`)."""
    return normalize_db_url(
        url,
        what="dead-letter store",
        error=DeadLetterError,
        memory_hint="use a file path, or 'memory' for MemoryDeadLetterStore",
    )


_describe = describe_db_url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets another process (``govbus dlq``) read while the app writes. Switching is a
    # write, so it may fail on a read-only copy; reading works without it.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error:
        pass
    finally:
        cursor.close()


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        # Another process may hold the write lock for a moment; wait rather than fail.
        # A ``?timeout=`` in the URL overrides this.
        connect_args: dict[str, Any] = {} if "timeout" in url.query else {"timeout": 10.0}
        engine = sa.create_engine(url, connect_args=connect_args)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {}
    libpq = url.get_backend_name() == "postgresql" and url.get_driver_name() in (
        "psycopg",
        "psycopg2",
    )
    if libpq and "connect_timeout" not in url.query:
        # Without it an unreachable host blocks for the operating system's TCP timeout.
        connect_args["connect_timeout"] = 10
    # Dead letters are rare: a connection may sit in the pool through a server restart.
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _detail(exc: BaseException) -> str:
    """The driver's own message on one line: no SQL and no parameters (they would carry the
    envelope), and never the password (drivers do not repeat it)."""
    return " ".join(str(getattr(exc, "orig", None) or exc).split())


def _safe_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; losing a dead letter over one character would be worse.
    return value.replace("\x00", "\ufffd")


def _to_row(letter: DeadLetter) -> dict[str, Any]:
    message = letter.message
    return {
        "id": letter.id,
        "at": letter.at,
        "subscription": _safe_text(letter.subscription),
        "address": None if letter.address is None else _safe_text(letter.address),
        "attempts": letter.attempts,
        "cause": _safe_text(letter.cause),
        "message_id": message.id,
        "msg_type": message.type,
        "message": message.to_json().decode("utf-8"),
    }


class SqlDeadLetterStore:
    """Dead letters in a SQL database (table ``govbus_dead_letters``), via SQLAlchemy.

    Every database call runs in a worker thread, so the event loop is never blocked. The table
    is created on the first :meth:`put`; reading a SQLite file that does not exist yet finds no
    entries and creates nothing. SQLite runs in WAL mode with a busy timeout, so another
    process can read the file while the app writes it.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a bare
            SQLite file path; a relative path is made absolute now. A plain ``postgresql://``
            URL uses psycopg 3 (the ``postgres`` extra).

    Raises:
        DeadLetterError: the URL cannot be parsed, names an in-memory SQLite database, or
            names a database whose driver is not installed. Every later failure of the
            database is a :class:`DeadLetterError` too, naming :attr:`where` (never the
            password) and what failed.
    """

    def __init__(self, url: str) -> None:
        self._url = _normalize_url(url)
        self._where = _describe(self._url)
        self._sqlite_file: str | None = None
        if self._url.get_backend_name() == "sqlite" and not self._url.query.get("uri"):
            self._sqlite_file = self._url.database
        try:
            self._engine = _create_engine(self._url)
        except (ArgumentError, ImportError) as exc:
            raise DeadLetterError(
                f"cannot open dead-letter store at {self._where}: {_detail(exc)}"
            ) from None
        self._table_ready = False
        self._ready_lock = threading.Lock()
        self._closed = False

    @property
    def where(self) -> str:
        return self._where

    # -- plumbing (worker threads) --------------------------------------------------------

    async def _run(self, action: str, call: Callable[[], _T]) -> _T:
        if self._closed:
            raise DeadLetterError(f"the dead-letter store at {self._where} is closed")
        return await asyncio.to_thread(self._guarded, action, call)

    def _guarded(self, action: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except GovbusError:
            raise
        except SQLAlchemyError as exc:
            raise DeadLetterError(f"cannot {action}: {_detail(exc)}") from exc

    def _absent(self) -> bool:
        """True when there is certainly nothing to read: no SQLite file, or no table yet.

        Never creates the file: a missing SQLite file is not opened at all.
        """
        if self._table_ready:
            return False
        if self._sqlite_file is not None and not os.path.exists(self._sqlite_file):
            return True
        with self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE_NAME):
                return True
        self._table_ready = True
        return False

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        with self._ready_lock:
            if self._table_ready:
                return
            if self._sqlite_file is not None:
                directory = os.path.dirname(self._sqlite_file)
                try:
                    os.makedirs(directory, exist_ok=True)
                except OSError as exc:
                    raise DeadLetterError(
                        f"cannot create the directory {directory} for the dead-letter "
                        f"database {self._sqlite_file}: {exc.strerror or exc}"
                    ) from exc
            try:
                with self._engine.begin() as conn:
                    lock_schema(conn, "govbus.dlq")
                    _metadata.create_all(conn, checkfirst=True)
            except SQLAlchemyError:
                # Another process may have created it between our check and our CREATE.
                with self._engine.connect() as conn:
                    if not sa.inspect(conn).has_table(TABLE_NAME):
                        raise
            self._table_ready = True

    def _select(self, conn: Connection, id: str) -> RowMapping:
        """The one row ``id`` names (exact id or unique prefix), or the right error."""
        c = _table.c
        exact = conn.execute(sa.select(_table).where(c.id == id)).mappings().first()
        if exact is not None:
            return exact
        if len(id) < MIN_PREFIX:
            raise _too_short(id, self._where)
        # substr rather than LIKE: LIKE ignores case on SQLite and treats % and _ specially.
        prefix = sa.func.substr(c.id, 1, len(id)) == id
        matches = int(
            conn.execute(sa.select(sa.func.count()).select_from(_table).where(prefix)).scalar_one()
        )
        if matches == 0:
            raise _not_found(id, self._where)
        if matches > 1:
            raise _ambiguous(id, self._where, matches)
        return conn.execute(sa.select(_table).where(prefix)).mappings().one()

    def _letter(self, row: RowMapping) -> DeadLetter:
        try:
            message = Message.from_json(row["message"])
        except GovbusError as exc:
            raise DeadLetterError(
                f"dead letter {row['id']} in {self._where} cannot be read: {exc}"
            ) from exc
        return DeadLetter(
            message=message,
            address=row["address"],
            subscription=row["subscription"],
            attempts=int(row["attempts"]),
            cause=row["cause"],
            at=row["at"],
            id=row["id"],
        )

    def _letters(self, rows: Iterable[RowMapping]) -> list[DeadLetter]:
        return [self._letter(row) for row in rows]

    # -- the store --------------------------------------------------------------------------

    async def put(self, letter: DeadLetter) -> None:
        letter = _checked(letter)
        if len(letter.id) > MAX_ID_LENGTH:
            raise DeadLetterError(
                f"dead letter id {letter.id[:MAX_ID_LENGTH]!r}... is longer than "
                f"{MAX_ID_LENGTH} characters"
            )
        row = _to_row(letter)

        def insert() -> None:
            self._ensure_table()
            with self._engine.begin() as conn:
                conn.execute(_table.insert(), row)

        await self._run(f"write dead letter {letter.id} to {self._where}", insert)

    async def entries(self, *, limit: int | None = None) -> list[DeadLetter]:
        _check_limit(limit)

        def read() -> list[DeadLetter]:
            if self._absent():
                return []
            stmt = sa.select(_table).order_by(_table.c.at, _table.c.id)
            if limit is not None:
                stmt = stmt.limit(limit)
            with self._engine.connect() as conn:
                rows = list(conn.execute(stmt).mappings())
            return self._letters(rows)

        return await self._run(f"read dead letters from {self._where}", read)

    async def get(self, id: str) -> DeadLetter:
        def read() -> DeadLetter:
            if self._absent():
                raise _missing(id, self._where)
            with self._engine.connect() as conn:
                row = self._select(conn, id)
            return self._letter(row)

        return await self._run(f"read dead letter {id!r} from {self._where}", read)

    async def remove(self, id: str) -> DeadLetter:
        def delete() -> DeadLetter:
            if self._absent():
                raise _missing(id, self._where)
            with self._engine.begin() as conn:
                row = self._select(conn, id)
                letter = self._letter(row)
                deleted = conn.execute(_table.delete().where(_table.c.id == row["id"]))
                if deleted.rowcount != 1:  # removed by someone else meanwhile
                    raise _not_found(id, self._where)
            return letter

        return await self._run(f"remove dead letter {id!r} from {self._where}", delete)

    async def count(self) -> int:
        def read() -> int:
            if self._absent():
                return 0
            with self._engine.connect() as conn:
                return int(
                    conn.execute(sa.select(sa.func.count()).select_from(_table)).scalar_one()
                )

        return await self._run(f"count dead letters in {self._where}", read)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._engine.dispose)


def open_dead_letters(url: str) -> DeadLetterStore:
    """The store ``url`` names: ``"memory"`` (or ``"memory://"``) for a
    :class:`MemoryDeadLetterStore`, ``nats://host:port`` for the dead-letter stream of a NATS
    bus (:class:`~govbus.bus.nats.NatsDeadLetterStore`, the ``nats`` extra), anything else for a
    :class:`SqlDeadLetterStore`.

    Example:
        >>> open_dead_letters("memory").where
        'memory'
    """
    if url in ("memory", "memory://"):
        return MemoryDeadLetterStore()
    if url.startswith(("nats://", "tls://")):
        try:
            from govbus.bus.nats import NatsDeadLetterStore
        except ImportError as exc:
            raise DeadLetterError(
                f"dead-letter store {url!r} needs the nats extra: pip install 'govbus[nats]' "
                f"({exc})"
            ) from None
        return NatsDeadLetterStore(url)
    return SqlDeadLetterStore(url)
