"""The bus conformance suite against ``NatsBus`` and a private ``nats-server``.

One server serves the whole module; every bus gets its own stream and subject prefix, so the
tests never see each other's messages (or their consumers, or their dead letters).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from govbus.bus.base import Bus
from govbus.testing.conformance import BusConformance
from tests.nats_server import NatsServer, nats_server_or_skip

pytest.importorskip("nats", reason="the nats extra (nats-py) is not installed")

from govbus.bus.nats import NatsBus  # after the importorskip above

pytestmark = pytest.mark.nats


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    server = nats_server_or_skip()
    try:
        yield server
    finally:
        server.close()


class TestNatsBus(BusConformance):
    # NatsBus refuses unroutable publishes (it checks the consumers' routes), and a nack with
    # delay 0 is redelivered at once; JetStream does not bound a consumer's backlog per
    # publish, so the backpressure test is skipped.
    refuses_unroutable = True
    supports_backpressure_hint = False
    redelivery_delay = 0.0
    wait_timeout = 10.0
    absence_wait = 0.3

    @pytest.fixture(autouse=True)
    def _server(self, nats_server: NatsServer) -> None:
        self.server = nats_server

    async def make_bus(self, *, max_pending: int | None = None) -> Bus:
        token = secrets.token_hex(4)
        return NatsBus(
            self.server.url,
            stream=f"T{token}",
            subject_prefix=f"t{token}",
            redelivery_base=0.02,
            redelivery_max=0.2,
            publish_timeout=5.0,
        )
