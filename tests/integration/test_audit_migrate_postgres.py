"""Several processes starting at once against a fresh PostgreSQL database create the audit
schema once: the migration is serialized, none of them fails on a half-created schema."""

from __future__ import annotations

import pytest

from govbus.audit.database import SCHEMA_VERSION
from tests.support import migrate_at_once

pytestmark = pytest.mark.postgres


def test_concurrent_first_starts_create_the_schema_once(fresh_url: str) -> None:
    errors, versions = migrate_at_once(fresh_url)
    assert not errors, errors
    assert versions == [(SCHEMA_VERSION,)]
