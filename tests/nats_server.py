"""A private ``nats-server`` with JetStream for tests: its own port, its own store directory.

The launcher lives in the package (:mod:`govbus.drills.broker`, which the ``bus: nats`` drills
use too); this module re-exports it for the tests and adds :func:`nats_server_or_skip`.

Usage::

    with NatsServer(tmp_path) as server:
        bus = NatsBus(server.url)
        ...
        server.restart()   # stop and start again on the same port and store (chaos tests)

:func:`nats_server_or_skip` starts one or skips the test when the binary is missing, or fails
it when ``GOVBUS_REQUIRE_SERVICES=1`` (continuous integration must not skip silently).
"""

from __future__ import annotations

from pathlib import Path

from govbus.drills.broker import (
    FALLBACK_PATHS,
    NOT_INSTALLED,
    NatsServer,
    find_nats_server,
    free_port,
)
from tests.conftest import skip_or_fail

__all__ = ["FALLBACK_PATHS", "NatsServer", "find_nats_server", "free_port", "nats_server_or_skip"]


def nats_server_or_skip(store_dir: Path | None = None) -> NatsServer:
    """A started :class:`NatsServer`; skips the test when ``nats-server`` is not installed or
    does not start (fails instead when ``GOVBUS_REQUIRE_SERVICES=1``)."""
    if find_nats_server() is None:
        skip_or_fail(NOT_INSTALLED)
    server = NatsServer(store_dir)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        server.close()
        skip_or_fail(f"nats-server did not start: {exc}")
    return server
