"""The bus layer: the ``Bus`` protocol, routing value objects and ``InMemoryBus``."""

from govbus.bus.base import Bus, DeadLetter, Delivery, DeliveryHandler, Route, Subscription
from govbus.bus.deadletter import (
    DeadLetterStore,
    MemoryDeadLetterStore,
    SqlDeadLetterStore,
    open_dead_letters,
)
from govbus.bus.memory import InMemoryBus

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
