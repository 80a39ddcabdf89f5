"""The bus layer: the ``Bus`` protocol, routing value objects and ``InMemoryBus``."""

from govbus.bus.base import Bus, DeadLetter, Delivery, DeliveryHandler, Route, Subscription
from govbus.bus.memory import InMemoryBus

__all__ = [
    "Bus",
    "DeadLetter",
    "Delivery",
    "DeliveryHandler",
    "InMemoryBus",
    "Route",
    "Subscription",
]
