"""Consent ledgers: has a data subject consented to a purpose, at a given time?

The ``consent`` check kind asks a :class:`ConsentStore` when its ``ledger`` parameter is on.
Two stores ship:

- :class:`InMemoryConsentStore`: a dict; for tests, demos and single-process deployments that
  load grants at start-up.
- :class:`SqlConsentStore`: a ``consent_ledger`` table (SQLAlchemy 2 Core; SQLite or PostgreSQL,
  chosen by URL), read through a small in-process cache.

Which store the check uses: the policy frame's :class:`~govbus.policy.LoadContext` carries no
services, so the store is process-wide and set by the application, before or after the policy
is loaded (the check looks it up on every call, which costs one global read)::

    from govbus.policy.consent import SqlConsentStore, set_consent_store

    set_consent_store(SqlConsentStore("sqlite:///consent.db"))

A ``consent`` check with ``ledger: true`` and no store configured denies every message it
covers with ``consent_store_missing``: it fails closed rather than pretending consent was given.

A consent is valid at ``now`` when it was granted at or before ``now``, has not expired
(``now < expires_at``) and has not been revoked (``now < revoked_at``). Times are UTC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from govbus.dburl import lock_schema

__all__ = [
    "ConsentGrant",
    "ConsentStore",
    "InMemoryConsentStore",
    "SqlConsentStore",
    "consent_ledger",
    "get_consent_store",
    "set_consent_store",
]


@runtime_checkable
class ConsentStore(Protocol):
    """Answers whether ``subject`` has consented to ``purpose`` at time ``now``.

    Called synchronously from a policy check on every hop, so it must be fast: an
    implementation backed by I/O caches its answers (see :class:`SqlConsentStore`). An
    exception is a ``check_error`` deny (fail closed).
    """

    def has_consent(self, subject: str, purpose: str, now: datetime) -> bool:
        """True when a consent of ``subject`` for ``purpose`` is valid at ``now``."""
        ...


@dataclass(frozen=True, slots=True)
class ConsentGrant:
    """One consent record (one row of the ledger).

    Attributes:
        granted_at: when consent was given; None means valid from any time.
        expires_at: when it lapses by itself, or None.
        revoked_at: when the subject withdrew it, or None.
    """

    granted_at: datetime | None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        """True when this grant covers ``now``."""
        return (
            (self.granted_at is None or self.granted_at <= now)
            and (self.expires_at is None or now < self.expires_at)
            and (self.revoked_at is None or now < self.revoked_at)
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    # Databases without a timezone type (SQLite) hand back naive values: they were written
    # as UTC, so they are read as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InMemoryConsentStore:
    """Consents in a dict: one grant per subject and purpose (granting again replaces it).

    Example:
        >>> from datetime import datetime, UTC
        >>> store = InMemoryConsentStore()
        >>> store.grant("u-1", "advice")
        >>> store.has_consent("u-1", "advice", datetime.now(UTC))
        True
        >>> store.revoke("u-1", "advice")
        >>> store.has_consent("u-1", "advice", datetime.now(UTC))
        False
    """

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._clock = clock
        self._grants: dict[tuple[str, str], ConsentGrant] = {}

    def grant(
        self,
        subject: str,
        purpose: str,
        *,
        expires_at: datetime | None = None,
        granted_at: datetime | None = None,
    ) -> None:
        """Record consent of ``subject`` for ``purpose``, from ``granted_at`` (default: always)
        until ``expires_at`` (default: until revoked)."""
        self._grants[subject, purpose] = ConsentGrant(_utc(granted_at), _utc(expires_at))

    def revoke(self, subject: str, purpose: str, *, at: datetime | None = None) -> None:
        """Withdraw the consent from ``at`` (default: the store's clock, now) on; a no-op when
        there is none."""
        current = self._grants.get((subject, purpose))
        if current is not None:
            revoked = _utc(at) or self._clock()
            self._grants[subject, purpose] = ConsentGrant(
                current.granted_at, current.expires_at, revoked
            )

    def has_consent(self, subject: str, purpose: str, now: datetime) -> bool:
        """True when the consent of ``subject`` for ``purpose`` is valid at ``now``."""
        grant = self._grants.get((subject, purpose))
        return grant is not None and grant.valid_at(now)


#: Schema of the ledger (SQLAlchemy Core). A ledger keeps history: every grant is a row, and a
#: revocation stamps ``revoked_at`` on the rows it ends instead of deleting them.
metadata = sa.MetaData()

consent_ledger: Final = sa.Table(
    "consent_ledger",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("purpose", sa.String, nullable=False),
    sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("ix_consent_ledger_subject_purpose", "subject", "purpose"),
)

_Grants = tuple[ConsentGrant, ...]


class SqlConsentStore:
    """A consent ledger in a SQL database, read through an in-process cache with a TTL.

    The trade-off: a check runs on every hop and must not wait on the database each time, so
    the grants of a (subject, purpose) pair are read at most once per ``cache_ttl`` seconds and
    kept in memory. Time-based changes stay exact (expiry and scheduled revocation are evaluated
    against each call's ``now`` from the cached rows), but a grant or revocation written to the
    database by *another* process is seen only when the cached entry ages out: a revoked consent
    can keep being honoured for up to ``cache_ttl`` seconds. Changes made through this store's
    own :meth:`grant` and :meth:`revoke` drop the cached entry at once. ``cache_ttl=0`` reads the
    database on every call. The cache holds at most ``max_entries`` pairs (oldest dropped first).

    A cache miss is a synchronous query, so use a synchronous driver URL
    (``sqlite:///consent.db``, ``postgresql+psycopg://...``).

    Args:
        url: a database URL, or an existing :class:`~sqlalchemy.engine.Engine` (not disposed by
            :meth:`close`).
        cache_ttl: seconds a cached answer may be reused.
        max_entries: most (subject, purpose) pairs cached at once.
        create: create the table when it does not exist.
        monotonic: the clock the cache ages by (injectable for tests).
        clock: the wall clock used for ``granted_at`` and ``revoked_at`` defaults.
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        cache_ttl: float = 30.0,
        max_entries: int = 10_000,
        create: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if cache_ttl < 0:
            raise ValueError("cache_ttl must be >= 0 seconds")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self._owns_engine = not isinstance(url, Engine)
        self.engine: Engine = sa.create_engine(url) if isinstance(url, str) else url
        self._ttl = cache_ttl
        self._max = max_entries
        self._monotonic = monotonic
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, _Grants]] = {}
        if create:
            with self.engine.begin() as conn:  # workers starting together create it once
                lock_schema(conn, "govbus.consent")
                metadata.create_all(conn)

    def has_consent(self, subject: str, purpose: str, now: datetime) -> bool:
        """True when a ledger row of ``subject`` for ``purpose`` is valid at ``now``."""
        return any(g.valid_at(now) for g in self._grants(subject, purpose))

    def grant(
        self,
        subject: str,
        purpose: str,
        *,
        expires_at: datetime | None = None,
        granted_at: datetime | None = None,
    ) -> None:
        """Add a grant row (``granted_at`` defaults to the store's clock)."""
        with self.engine.begin() as conn:
            conn.execute(
                consent_ledger.insert().values(
                    subject=subject,
                    purpose=purpose,
                    granted_at=_utc(granted_at) or self._clock(),
                    expires_at=_utc(expires_at),
                )
            )
        self._cache.pop((subject, purpose), None)

    def revoke(self, subject: str, purpose: str, *, at: datetime | None = None) -> None:
        """Stamp ``revoked_at`` (default: now) on every unrevoked grant of the pair."""
        with self.engine.begin() as conn:
            conn.execute(
                consent_ledger.update()
                .where(
                    consent_ledger.c.subject == subject,
                    consent_ledger.c.purpose == purpose,
                    consent_ledger.c.revoked_at.is_(None),
                )
                .values(revoked_at=_utc(at) or self._clock())
            )
        self._cache.pop((subject, purpose), None)

    def clear_cache(self) -> None:
        """Forget every cached answer (the next call per pair reads the database)."""
        self._cache.clear()

    def close(self) -> None:
        """Dispose of the engine when this store created it."""
        self._cache.clear()
        if self._owns_engine:
            self.engine.dispose()

    def _grants(self, subject: str, purpose: str) -> _Grants:
        key = (subject, purpose)
        tick = self._monotonic()
        cached = self._cache.get(key)
        if cached is not None and tick - cached[0] < self._ttl:
            return cached[1]
        grants = self._load(subject, purpose)
        if self._ttl > 0:
            self._cache.pop(key, None)  # re-insert so dict order is age order
            if len(self._cache) >= self._max:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = (tick, grants)
        return grants

    def _load(self, subject: str, purpose: str) -> _Grants:
        c = consent_ledger.c
        query = sa.select(c.granted_at, c.expires_at, c.revoked_at).where(
            c.subject == subject, c.purpose == purpose
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return tuple(
            ConsentGrant(_utc(row.granted_at), _utc(row.expires_at), _utc(row.revoked_at))
            for row in rows
        )


_store: ConsentStore | None = None


def set_consent_store(store: ConsentStore | None) -> None:
    """Make ``store`` the consent ledger every ``consent`` check with ``ledger: true`` asks
    (None removes it: such checks then deny with ``consent_store_missing``)."""
    global _store
    if store is not None and not isinstance(store, ConsentStore):
        raise TypeError(f"{type(store).__name__} has no has_consent(subject, purpose, now)")
    _store = store


def get_consent_store() -> ConsentStore | None:
    """The configured consent ledger, or None."""
    return _store
