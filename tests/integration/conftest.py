"""Fixtures shared by the integration tests: the PostgreSQL test database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.conftest import skip_or_fail

#: The shared PostgreSQL test database (trust auth on loopback in CI).
POSTGRES_URL = os.environ.get(
    "GOVBUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="module")
def engine() -> Iterator[sa.Engine]:
    """An engine on the test database; skips (or fails, with GOVBUS_REQUIRE_SERVICES=1) when
    PostgreSQL cannot be reached."""
    eng = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        eng.dispose()
        skip_or_fail(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    yield eng
    eng.dispose()


@pytest.fixture
def fresh_url(engine: sa.Engine) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards: for tests that act on a
    whole store (migrations, prune, export), which must not touch other tests' chains."""
    name = f"govbus_t_{uuid.uuid4().hex[:12]}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
