"""Database URLs for the stores that take one (the audit log, the dead-letter store).

One layer below those that use it: it imports only :mod:`govbus.errors`, and each caller passes
its own error type and wording.
"""

from __future__ import annotations

import hashlib
import os
import re

from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from govbus.errors import GovbusError

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def mask_password(url: str) -> str:
    """``url`` with anything that looks like a password replaced, for messages about a URL
    SQLAlchemy could not parse (so it cannot hide the password itself).

    >>> mask_password("postgresql://app:s3cret@db/audit")
    'postgresql://app:***@db/audit'
    """
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def normalize_db_url(
    url: str | URL, *, what: str, error: type[GovbusError], memory_hint: str
) -> URL:
    """Turn a database URL or a bare file path into the URL a store connects to.

    A bare path (no ``://``) is a SQLite file; a relative SQLite path is made absolute now, so a
    later ``chdir`` cannot switch files; ``postgresql://`` gets the psycopg 3 driver.

    Args:
        what: the store, for messages ("audit database").
        error: the error type to raise.
        memory_hint: what to use instead of an in-memory SQLite database.

    Raises:
        error: the URL is empty or cannot be parsed, or it names an in-memory SQLite database
            (every connection would see its own empty database).

    Example:
        >>> from govbus.errors import ConfigError
        >>> normalize_db_url("postgresql://u@db/app", what="store", error=ConfigError,
        ...                  memory_hint="a file").drivername
        'postgresql+psycopg'
    """
    if isinstance(url, URL):
        parsed = url
    elif not url.strip():
        raise error(f"the {what} URL is empty")
    elif "://" not in url:
        parsed = URL.create("sqlite", database=url)
    else:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            raise error(f"cannot parse {what} URL {mask_password(url)!r}: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if (
            not database
            or database == ":memory:"
            or database.startswith("file::memory:")
            or parsed.query.get("mode") == "memory"
        ):
            raise error(
                f"an in-memory SQLite {what} is not supported (every connection would see a "
                f"different empty database); {memory_hint}"
            )
        if not parsed.query.get("uri"):
            parsed = parsed.set(database=os.path.abspath(os.path.expanduser(database)))
    return parsed


def describe_db_url(url: URL) -> str:
    """Where a store is, for messages: the file for SQLite, else the URL without password."""
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def lock_schema(conn: Connection, name: str) -> None:
    """Serialize creating or migrating the schema ``name`` across processes, until the end of
    ``conn``'s transaction.

    Workers started together against a fresh PostgreSQL database would otherwise race to create
    the same tables (one fails on the catalog's unique index). PostgreSQL gets a
    transaction-scoped advisory lock keyed by ``name``, so the second process waits and then
    finds the schema in place. SQLite takes the database's write lock now (``BEGIN
    IMMEDIATE``; Python's driver would open the transaction only at the first insert, after
    the ``CREATE TABLE`` that races), so call this first in the transaction.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        if raw is not None and not getattr(raw, "in_transaction", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
