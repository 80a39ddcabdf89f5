"""Fixtures shared by the integration tests: the PostgreSQL test database."""

from __future__ import annotations

import os
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
