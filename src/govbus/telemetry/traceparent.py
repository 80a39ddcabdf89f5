"""W3C ``traceparent`` helpers: every message carries one so a request is one trace."""

from __future__ import annotations

import os
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def new_traceparent() -> str:
    """A fresh sampled ``traceparent`` with a random trace id and span id."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a well-formed ``traceparent``, else None."""
    if traceparent is None:
        return None
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else None
