"""The ``Bus`` protocol: what every transport (in-memory, NATS JetStream) provides.

Routing is a value object (:class:`Route`) so it is testable without a bus. A message is
published to an *address*: ``message.to`` unless an explicit ``address`` is given (replies to a
waiting requester go to its inbox address). A subscription matches on recipient address,
on type glob, or on both.

Delivery semantics every implementation models for real:

* A handler receives a :class:`Delivery` and settles it: ``ack()`` (done), ``nack(delay)``
  (redeliver later with ``attempt + 1``) or ``term(reason)`` (give up: dead-letter now).
  A handler that returns without settling acks; a handler that raises nacks.
* Redelivery is bounded by the subscription's ``max_attempts``; after the last attempt the
  message goes to the dead-letter store with its cause.
* Subscriptions that share a ``group`` are competing consumers: each message goes to one member.
  Subscriptions without a group each get their own copy.
* Queues are bounded: a full queue makes ``publish`` wait (backpressure); nothing is dropped.
* ``close()`` stops new publishes, drains queued and in-flight work, then stops.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from govbus.envelope import Message, TypePattern, new_id

if TYPE_CHECKING:
    from govbus.bus.deadletter import DeadLetterStore


@dataclass(frozen=True, slots=True)
class Route:
    """Which published messages a subscription receives.

    ``recipient`` matches the publish address exactly; ``types`` matches ``message.type``.
    Both given: both must match. Neither given: matches everything.
    """

    recipient: str | None = None
    types: TypePattern | None = None

    def matches(self, message: Message, address: str | None) -> bool:
        if self.recipient is not None and self.recipient != address:
            return False
        return self.types is None or self.types.matches(message.type)

    def describe(self) -> str:
        parts = []
        if self.recipient is not None:
            parts.append(f"to={self.recipient}")
        if self.types is not None:
            parts.append(f"types={','.join(self.types.patterns)}")
        return " ".join(parts) or "all"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be handled after its subscription's ``max_attempts``, or that
    its handler gave up on (``term``), with the cause.

    ``id`` names the dead-letter entry (``govbus dlq show ID``); ``message.id`` stays the id of
    the message itself.
    """

    message: Message
    address: str | None
    subscription: str
    attempts: int
    cause: str
    at: datetime
    id: str = field(default_factory=new_id)


class Delivery(Protocol):
    """One delivery attempt of one message to one subscription."""

    @property
    def message(self) -> Message: ...

    @property
    def attempt(self) -> int: ...

    @property
    def address(self) -> str | None: ...

    @property
    def settled(self) -> bool: ...

    async def ack(self) -> None:
        """The message is done; it will not be delivered again."""

    async def nack(self, *, delay: float | None = None, reason: str = "") -> None:
        """Redeliver later (``attempt + 1``), or dead-letter if attempts are exhausted."""

    async def term(self, reason: str) -> None:
        """Give up now: the message goes to the dead-letter store with ``reason``."""


class DeliveryState:
    """The read side of :class:`Delivery`, shared by the adapters' delivery classes (which add
    settling): the message, its attempt and address, and whether it is settled."""

    __slots__ = ("_address", "_attempt", "_message", "_settled")

    def __init__(self, message: Message, address: str | None, attempt: int) -> None:
        self._message = message
        self._address = address
        self._attempt = attempt
        self._settled = False

    @property
    def message(self) -> Message:
        return self._message

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def address(self) -> str | None:
        return self._address

    @property
    def settled(self) -> bool:
        return self._settled


DeliveryHandler = Callable[[Delivery], Awaitable[None]]


class Subscription(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def route(self) -> Route: ...

    @property
    def group(self) -> str | None: ...

    async def unsubscribe(self) -> None:
        """Stop receiving; in-flight deliveries of this subscription finish first."""


@runtime_checkable
class Bus(Protocol):
    """A swappable pub/sub transport for :class:`Message` envelopes."""

    #: Capabilities the conformance suite reads; an adapter that lacks one says so here.
    supports_request: bool
    supports_dead_letters: bool

    async def start(self) -> None:
        """Connect / start background work. Idempotent."""

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Refuse new publishes, drain queued and in-flight deliveries, then stop."""

    async def publish(self, message: Message, *, address: str | None = None) -> None:
        """Publish ``message`` to ``address`` (default ``message.to``).

        Waits while a matching queue is full (backpressure). Raises ``BusClosedError`` after
        ``close()``, ``BusUnavailableError`` when the broker cannot be reached, and
        ``NoSubscriberError`` when nothing would receive the message (nothing is ever dropped
        silently; a message that answers a pending ``request`` counts as received).
        """

    async def subscribe(
        self,
        handler: DeliveryHandler,
        *,
        recipient: str | None = None,
        types: str | list[str] | tuple[str, ...] | None = None,
        group: str | None = None,
        concurrency: int = 1,
        max_attempts: int = 5,
    ) -> Subscription:
        """Deliver matching messages to ``handler`` with at most ``concurrency`` in flight."""

    async def request(
        self, message: Message, *, timeout: float, address: str | None = None
    ) -> Message:
        """Publish ``message`` and return the first message whose ``causation_id`` is its id.

        Raises ``RequestTimeoutError`` if none arrives within ``timeout`` seconds.
        """

    @property
    def dead_letter_store(self) -> DeadLetterStore:
        """Where dead letters are kept: listed, shown, removed and replayed by ``govbus dlq``."""

    async def dead_letters(self) -> list[DeadLetter]:
        """Messages that exhausted their attempts, oldest first."""
