"""The bus layer: the ``Bus`` protocol, routing value objects and ``InMemoryBus``.

``NatsBus``, ``NatsDeadLetterStore`` and ``NatsIdempotencyStore`` need the optional ``nats``
extra (``nats-py``): they are imported from :mod:`govbus.bus.nats` on first access, so
``import govbus.bus`` works without it.
"""

from typing import TYPE_CHECKING

from govbus.bus.base import Bus, DeadLetter, Delivery, DeliveryHandler, Route, Subscription
from govbus.bus.deadletter import (
    DeadLetterStore,
    MemoryDeadLetterStore,
    SqlDeadLetterStore,
    open_dead_letters,
)
from govbus.bus.memory import InMemoryBus

if TYPE_CHECKING:
    from govbus.bus.nats import NatsBus as NatsBus
    from govbus.bus.nats import NatsDeadLetterStore as NatsDeadLetterStore
    from govbus.bus.nats import NatsIdempotencyStore as NatsIdempotencyStore

__all__ = [
    "Bus",
    "DeadLetter",
    "DeadLetterStore",
    "Delivery",
    "DeliveryHandler",
    "InMemoryBus",
    "MemoryDeadLetterStore",
    "Route",
    "SqlDeadLetterStore",
    "Subscription",
    "open_dead_letters",
]

#: Names provided by :mod:`govbus.bus.nats`, imported when first used.
_NATS_EXPORTS = frozenset({"NatsBus", "NatsDeadLetterStore", "NatsIdempotencyStore"})


def __getattr__(name: str) -> object:
    """Import the NATS adapter on first access (it needs the optional ``nats-py``)."""
    if name in _NATS_EXPORTS:
        from govbus.bus import nats as _nats

        value: object = getattr(_nats, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
