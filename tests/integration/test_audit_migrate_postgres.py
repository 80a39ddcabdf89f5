"""Several processes starting at once against a fresh PostgreSQL database create the audit
schema once: the migration is serialized, none of them fails on a half-created schema."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from govbus.audit.database import SCHEMA_VERSION, migrate

pytestmark = pytest.mark.postgres


def test_concurrent_first_starts_create_the_schema_once(fresh_url: str) -> None:
    workers = 6
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []
    engines = [sa.create_engine(fresh_url) for _ in range(workers)]

    def start(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            migrate(engine, fresh_url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors, errors
        with engines[0].connect() as conn:
            versions = conn.execute(sa.text("SELECT version FROM audit_schema_version")).all()
        assert versions == [(SCHEMA_VERSION,)]
    finally:
        for e in engines:
            e.dispose()
