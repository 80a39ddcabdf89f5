"""Consent stores: the in-memory one and the SQL ledger with its TTL cache."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import govbus.policy.consent
from govbus.policy.consent import (
    ConsentStore,
    InMemoryConsentStore,
    SqlConsentStore,
    consent_ledger,
)

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def sql(tmp_path: Path, ticks: Ticks) -> Iterator[SqlConsentStore]:
    store = SqlConsentStore(
        f"sqlite:///{tmp_path / 'consent.db'}",
        cache_ttl=30.0,
        monotonic=ticks,
        clock=lambda: T0,
    )
    yield store
    store.close()


@pytest.fixture(params=["memory", "sql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsentStore]:
    """Each store, for the semantics they share."""
    if request.param == "memory":
        yield InMemoryConsentStore(clock=lambda: T0)
        return
    store = SqlConsentStore(f"sqlite:///{tmp_path / 'shared.db'}", clock=lambda: T0)
    yield store
    store.close()


def test_both_stores_satisfy_the_protocol(any_store: ConsentStore) -> None:
    assert isinstance(any_store, ConsentStore)


def test_no_grant_means_no_consent(any_store: ConsentStore) -> None:
    assert not any_store.has_consent("ana", "advice", T0)


def test_a_grant_covers_its_subject_and_purpose_only(any_store: ConsentStore) -> None:
    any_store.grant("ana", "advice", granted_at=T0)  # type: ignore[attr-defined]
    assert any_store.has_consent("ana", "advice", T0)
    assert any_store.has_consent("ana", "advice", T0 + 1000 * HOUR)
    assert not any_store.has_consent("ana", "marketing", T0)
    assert not any_store.has_consent("bob", "advice", T0)
    assert not any_store.has_consent("ana", "advice", T0 - HOUR)  # not granted yet


def test_a_grant_lapses_at_its_expiry(any_store: ConsentStore) -> None:
    any_store.grant("ana", "advice", granted_at=T0, expires_at=T0 + HOUR)  # type: ignore[attr-defined]
    assert any_store.has_consent("ana", "advice", T0 + HOUR - timedelta(microseconds=1))
    assert not any_store.has_consent("ana", "advice", T0 + HOUR)


def test_revoke_ends_consent_from_its_time_on(any_store: ConsentStore) -> None:
    any_store.grant("ana", "advice", granted_at=T0)  # type: ignore[attr-defined]
    any_store.revoke("ana", "advice", at=T0 + HOUR)  # type: ignore[attr-defined]
    assert any_store.has_consent("ana", "advice", T0 + timedelta(minutes=59))
    assert not any_store.has_consent("ana", "advice", T0 + HOUR)


def test_revoke_defaults_to_the_stores_clock(any_store: ConsentStore) -> None:
    any_store.grant("ana", "advice", granted_at=T0 - HOUR)  # type: ignore[attr-defined]
    any_store.revoke("ana", "advice")  # type: ignore[attr-defined]
    assert any_store.has_consent("ana", "advice", T0 - timedelta(minutes=1))
    assert not any_store.has_consent("ana", "advice", T0)


def test_a_new_grant_after_a_revocation_restores_consent(any_store: ConsentStore) -> None:
    any_store.grant("ana", "advice", granted_at=T0)  # type: ignore[attr-defined]
    any_store.revoke("ana", "advice", at=T0 + HOUR)  # type: ignore[attr-defined]
    any_store.grant("ana", "advice", granted_at=T0 + 2 * HOUR)  # type: ignore[attr-defined]
    assert any_store.has_consent("ana", "advice", T0 + 3 * HOUR)


def test_times_with_an_offset_are_compared_in_utc(any_store: ConsentStore) -> None:
    plus_two = datetime(2026, 11, 21, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    any_store.grant("ana", "advice", granted_at=plus_two)  # type: ignore[attr-defined]
    assert not any_store.has_consent("ana", "advice", T0 + HOUR)  # 11:00 UTC, before 12:00 UTC
    assert any_store.has_consent("ana", "advice", T0 + 2 * HOUR)


def test_in_memory_revoke_without_a_grant_is_a_no_op() -> None:
    store = InMemoryConsentStore()
    store.revoke("ana", "advice")
    assert not store.has_consent("ana", "advice", T0)


def test_in_memory_grant_without_granted_at_is_valid_at_any_time() -> None:
    store = InMemoryConsentStore()
    store.grant("ana", "advice")
    assert store.has_consent("ana", "advice", datetime(1990, 1, 1, tzinfo=UTC))


# -- the SQL ledger ---------------------------------------------------------------------------


def write_behind_its_back(store: SqlConsentStore, **row: object) -> None:
    """Change the ledger as another process would: straight in the table."""
    with store.engine.begin() as conn:
        conn.execute(consent_ledger.insert().values(**row))


def revoke_behind_its_back(store: SqlConsentStore, at: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(consent_ledger.update().values(revoked_at=at))


def test_sql_ledger_keeps_history_and_persists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = SqlConsentStore(url, clock=lambda: T0)
    first.grant("ana", "advice")
    first.revoke("ana", "advice", at=T0 + HOUR)
    first.grant("ana", "advice", granted_at=T0 + 2 * HOUR)
    first.close()
    second = SqlConsentStore(url)
    try:
        with second.engine.connect() as conn:
            rows = conn.execute(
                sa.select(consent_ledger.c.granted_at, consent_ledger.c.revoked_at).order_by(
                    consent_ledger.c.id
                )
            ).all()
        assert len(rows) == 2 and rows[0].revoked_at is not None and rows[1].revoked_at is None
        assert second.has_consent("ana", "advice", T0 + 30 * timedelta(minutes=1))
        assert not second.has_consent("ana", "advice", T0 + 90 * timedelta(minutes=1))
        assert second.has_consent("ana", "advice", T0 + 3 * HOUR)
    finally:
        second.close()


def test_sql_cache_hides_outside_changes_until_the_ttl_passes(
    sql: SqlConsentStore, ticks: Ticks
) -> None:
    assert not sql.has_consent("ana", "advice", T0)
    write_behind_its_back(sql, subject="ana", purpose="advice", granted_at=T0 - HOUR)
    ticks.now += 29.9
    assert not sql.has_consent("ana", "advice", T0)  # still the cached answer
    ticks.now += 0.1
    assert sql.has_consent("ana", "advice", T0)  # TTL over: read again
    revoke_behind_its_back(sql, T0 - timedelta(minutes=1))
    ticks.now += 10
    assert sql.has_consent("ana", "advice", T0)  # revocation elsewhere: seen within the TTL
    ticks.now += 30
    assert not sql.has_consent("ana", "advice", T0)


def test_sql_cache_reads_the_database_once_per_ttl(sql: SqlConsentStore, ticks: Ticks) -> None:
    sql.grant("ana", "advice", granted_at=T0 - HOUR)
    statements: list[str] = []
    sa.event.listen(sql.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(50):
        assert sql.has_consent("ana", "advice", T0)
    assert len(statements) == 1
    ticks.now += 30
    sql.has_consent("ana", "advice", T0)
    assert len(statements) == 2


def test_sql_cached_rows_still_honour_expiry_exactly(sql: SqlConsentStore) -> None:
    """The cache keeps rows, not answers: time moving on needs no database read."""
    sql.grant("ana", "advice", granted_at=T0, expires_at=T0 + HOUR)
    assert sql.has_consent("ana", "advice", T0)
    assert not sql.has_consent("ana", "advice", T0 + HOUR)


def test_sql_own_grant_and_revoke_take_effect_at_once(sql: SqlConsentStore) -> None:
    assert not sql.has_consent("ana", "advice", T0)  # caches "no rows"
    sql.grant("ana", "advice", granted_at=T0 - HOUR)
    assert sql.has_consent("ana", "advice", T0)
    sql.revoke("ana", "advice", at=T0 - timedelta(minutes=1))
    assert not sql.has_consent("ana", "advice", T0)


def test_sql_ttl_zero_reads_every_time(tmp_path: Path, ticks: Ticks) -> None:
    store = SqlConsentStore(f"sqlite:///{tmp_path / 'c.db'}", cache_ttl=0, monotonic=ticks)
    try:
        assert not store.has_consent("ana", "advice", T0)
        write_behind_its_back(store, subject="ana", purpose="advice", granted_at=T0 - HOUR)
        assert store.has_consent("ana", "advice", T0)
    finally:
        store.close()


def test_sql_cache_is_bounded(tmp_path: Path, ticks: Ticks) -> None:
    store = SqlConsentStore(f"sqlite:///{tmp_path / 'c.db'}", max_entries=2, monotonic=ticks)
    try:
        for subject in ("a", "b", "c"):
            store.has_consent(subject, "advice", T0)
        assert len(store._cache) == 2
        assert ("a", "advice") not in store._cache  # the oldest went first
    finally:
        store.close()


def test_sql_store_uses_a_given_engine_and_leaves_it_open(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    store = SqlConsentStore(engine)
    store.grant("ana", "advice", granted_at=T0)
    store.close()
    try:
        assert SqlConsentStore(engine).has_consent("ana", "advice", T0)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"cache_ttl": -1}, "cache_ttl"), ({"max_entries": 0}, "max_entries")]
)
def test_sql_store_refuses_bad_settings(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        SqlConsentStore("sqlite://", **kwargs)  # type: ignore[arg-type]


def test_the_docstring_examples_run() -> None:
    results = doctest.testmod(govbus.policy.consent)
    assert results.attempted > 0 and results.failed == 0
