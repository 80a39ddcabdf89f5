"""A request whose publish the bus refuses is answered at once with the reason, and the
app's own idempotency store is used whatever the bus."""

from __future__ import annotations

from govbus.audit import MemoryAuditStore
from govbus.bus import InMemoryBus
from govbus.envelope import Actor, Message
from govbus.errors import BusUnavailableError
from govbus.orchestrator import FAILED, App
from govbus.registry import Context
from govbus.resilience import MemoryIdempotencyStore

from .conftest import policy

ADVISOR = Actor(subject="a-1", roles=("advisor",))


class DownBus(InMemoryBus):
    """A bus whose broker is unreachable: every publish fails."""

    async def publish(self, message: Message, *, address: str | None = None) -> None:
        raise BusUnavailableError("nats://broker:4222: not connected (test)")


async def test_a_request_the_bus_cannot_publish_is_answered_bus_unavailable_at_once() -> None:
    app = App("outage", policy=policy(), bus=DownBus(), audit=MemoryAuditStore())

    @app.agent("advisor", handles="portfolio.advise")
    async def advisor(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {})

    async with app:
        reply = await app.request(
            Message(type="portfolio.advise", sender="web", actor=ADVISOR), timeout=5
        )
    # Not request_timeout after 5 s: the notice reaches the waiting request without the bus.
    assert reply.type == FAILED
    assert reply.payload["code"] == "bus_unavailable"


def test_an_empty_idempotency_store_given_to_the_app_is_the_one_used() -> None:
    store = MemoryIdempotencyStore(ttl=60.0, max_keys=100)
    assert len(store) == 0  # falsy: "store or default" would have replaced it
    app = App("mine", policy=policy(), audit=MemoryAuditStore(), bus="nats://127.0.0.1:1")
    app.idempotency = store
    assert app.orchestrator.idempotency is store
