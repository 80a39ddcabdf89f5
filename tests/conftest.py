"""Shared test configuration."""

from __future__ import annotations

import os

import pytest

REQUIRE_SERVICES = os.environ.get("GOVBUS_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip when a service is missing, or fail when CI requires services."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GOVBUS_REQUIRE_SERVICES=1)")
    pytest.skip(reason)
