"""The bus conformance suite against ``InMemoryBus``."""

from __future__ import annotations

from govbus.bus.base import Bus
from govbus.bus.memory import InMemoryBus
from govbus.testing.conformance import BusConformance


class TestInMemoryBus(BusConformance):
    supports_backpressure_hint = True

    async def make_bus(self, *, max_pending: int | None = None) -> Bus:
        return InMemoryBus(max_pending=max_pending or 1024)
