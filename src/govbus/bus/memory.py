"""``InMemoryBus``: the embedded default bus, with ack, nack, redelivery and backpressure.

It is a real implementation of :class:`~govbus.bus.base.Bus`, not a mock: the same code path
runs in tests and in a single-process deployment, so failure tests mean something.

Model:

* Every subscription belongs to a *consumer group*. Subscriptions sharing a ``group`` name
  share one bounded queue that all their worker tasks pull from (competing consumers); a
  subscription without a group is a group of its own. ``publish`` puts one delivery into the
  queue of every group whose route matches, and waits while a queue is full (backpressure);
  nothing is ever dropped.
* A message is *outstanding* from the moment ``publish`` accepts it for a group until it is
  acked or dead-lettered; a nacked message stays outstanding while its redelivery is pending.
  ``close()`` waits for the outstanding count to reach zero.

Documented choices:

* **Settling twice is a no-op**: the first ``ack``/``nack``/``term`` wins and later calls do
  nothing, so a handler that acks and then raises is not redelivered.
* **Named groups are durable**: when the last member of a group unsubscribes, the group stops
  receiving new publishes, but messages already queued for it (and redeliveries pending for
  it) are kept for a later subscription to the same group name. On ``close()`` such orphaned
  messages are dead-lettered (cause ``"bus closed while group ... had no subscriber"``) rather
  than waited for. A subscription without a group cannot be rejoined, so its leftovers are
  dead-lettered when it unsubscribes (cause ``"subscription ... cancelled before delivery"``).
* **One route per group**: every member of a group must subscribe with the same ``recipient``
  and ``types`` (a ``ValueError`` says so otherwise), as with one durable JetStream consumer.
  The first member's ``max_attempts`` applies to the whole group.
* **No loss on close**: a redelivery whose backoff would end in the last quarter (at most the
  last second) of the drain window, or after it, is delivered at once instead of waiting.
* While ``close()`` drains, publishes are still accepted, so handlers in flight can send
  their replies and those replies are delivered too (as NATS's drain allows). Callers that
  originate traffic stop before closing the bus (``App.close`` does). Once the drain is
  complete the bus is sealed: every publish raises ``BusClosedError``.
* Logs (logger ``govbus.bus``) name message ids, types and exception class names only, never
  payload content or exception text (which may quote the payload); the full ``repr`` of a
  handler's exception is the nack reason and so the dead letter's cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from govbus.bus.base import DeadLetter, DeliveryHandler, DeliveryState, Route, Subscription
from govbus.bus.deadletter import DeadLetterStore, MemoryDeadLetterStore
from govbus.envelope import Message, TypePattern
from govbus.errors import BusClosedError, NoSubscriberError, RequestTimeoutError

__all__ = ["InMemoryBus"]

logger = logging.getLogger("govbus.bus")

#: Routing-cache entries kept before the cache is cleared (addresses such as per-request
#: inboxes are unbounded, so the cache must not grow with them).
_ROUTE_CACHE_MAX: Final = 4096
#: The end of the drain window (this fraction, at most this many seconds) is kept for handling
#: redeliveries: one whose backoff would end in it is delivered at once instead.
_DRAIN_GRACE_MAX: Final = 1.0
_DRAIN_GRACE_FRACTION: Final = 0.25


#: The worker task whose handler is running, visible to tasks the handler starts.
_running_worker: ContextVar[asyncio.Task[None] | None] = ContextVar(
    "govbus_running_worker", default=None
)


class _Group:
    """A consumer group: one bounded queue shared by the workers of all its members."""

    __slots__ = ("label", "max_attempts", "members", "name", "queue", "route")

    def __init__(
        self, name: str | None, label: str, route: Route, max_attempts: int, max_pending: int
    ) -> None:
        self.name = name
        self.label = label
        self.route = route
        self.max_attempts = max_attempts
        self.members: list[_MemorySubscription] = []
        self.queue: asyncio.Queue[_MemoryDelivery] = asyncio.Queue(max_pending)


class _MemoryDelivery(DeliveryState):
    """One delivery attempt of one message to one consumer group.

    Implements :class:`~govbus.bus.base.Delivery`. Settling twice is a no-op: the first
    ``ack``/``nack``/``term`` wins.
    """

    __slots__ = ("_bus", "_group", "_subscriber")

    def __init__(
        self,
        bus: InMemoryBus,
        group: _Group,
        message: Message,
        address: str | None,
        attempt: int,
    ) -> None:
        self._bus = bus
        self._group = group
        super().__init__(message, address, attempt)
        self._subscriber = group.label

    async def ack(self) -> None:
        """The message is done; it will not be delivered again. No-op if already settled."""
        if not self._settled:
            self._settled = True
            self._bus._finish()

    async def nack(self, *, delay: float | None = None, reason: str = "") -> None:
        """Redeliver after ``delay`` seconds (default: exponential backoff) with ``attempt + 1``,
        or dead-letter if this was the group's last attempt. No-op if already settled."""
        if not self._settled:
            self._settled = True
            self._bus._nacked(self, delay, reason)

    async def term(self, reason: str) -> None:
        """Dead-letter the message now with ``reason``. No-op if already settled."""
        if not self._settled:
            self._settled = True
            self._bus._dead_letter(self, reason)

    def __repr__(self) -> str:
        state = "settled" if self._settled else "open"
        return (
            f"<Delivery {self._message.id} type={self._message.type} "
            f"attempt={self._attempt} {state}>"
        )


class _Worker:
    __slots__ = ("busy", "task")

    def __init__(self) -> None:
        self.busy = False
        self.task: asyncio.Task[None] | None = None


class _MemorySubscription:
    """Implements :class:`~govbus.bus.base.Subscription` for :class:`InMemoryBus`."""

    __slots__ = ("_bus", "_group", "_handler", "_name", "_stopping", "_workers")

    def __init__(
        self, bus: InMemoryBus, name: str, group: _Group, handler: DeliveryHandler
    ) -> None:
        self._bus = bus
        self._name = name
        self._group = group
        self._handler = handler
        self._stopping = False
        self._workers: list[_Worker] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def route(self) -> Route:
        return self._group.route

    @property
    def group(self) -> str | None:
        return self._group.name

    async def unsubscribe(self) -> None:
        """Stop receiving. Idle workers stop now; busy ones after their current delivery.

        Messages still queued for the group stay there for its other or later members.
        Safe to call from inside this subscription's own handler, and more than once.
        """
        if not self._stopping:
            self._stopping = True
            self._bus._detach(self)
            for worker in self._workers:
                # A worker parked in queue.get() can be cancelled without losing an item:
                # the item is only removed once the worker resumes, and then it is busy.
                if not worker.busy and worker.task is not None:
                    worker.task.cancel()
        # Waiting for the worker that runs the caller (directly, or through a task the handler
        # started, e.g. asyncio.wait_for) would deadlock.
        mine = {asyncio.current_task(), _running_worker.get()}
        tasks = [w.task for w in self._workers if w.task is not None and w.task not in mine]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if all(w.task is None or w.task.done() for w in self._workers):
            # Until then close() still knows the workers, to stop any that hang.
            self._bus._forget(self)

    async def _work(self, worker: _Worker) -> None:
        me = asyncio.current_task()
        assert me is not None
        _running_worker.set(me)  # once per worker; tasks started by handlers inherit it
        queue = self._group.queue
        handler = self._handler
        name = self._name
        bus = self._bus
        while not self._stopping:
            delivery = await queue.get()
            worker.busy = True
            delivery._subscriber = name
            try:
                await handler(delivery)
            except asyncio.CancelledError as exc:
                if me.cancelling():
                    raise  # the worker itself is being stopped (close timed out)
                bus._handler_failed(delivery, exc, name)
            except Exception as exc:
                bus._handler_failed(delivery, exc, name)
            else:
                if not delivery._settled:
                    delivery._settled = True
                    bus._finish()
            worker.busy = False


class InMemoryBus:
    """The embedded default :class:`~govbus.bus.base.Bus`: asyncio queues, in one process.

    Args:
        max_pending: bound of each consumer group's queue; a full queue makes ``publish`` wait.
        redelivery_base: first backoff (seconds) of a nack without an explicit delay; attempt
            ``n`` waits ``redelivery_base * 2 ** (n - 1)``, capped at ``redelivery_max``.
        redelivery_max: the backoff cap in seconds.
        dead_letter_limit: how many dead letters the default in-memory store keeps (the
            newest); ``dead_letter_total`` counts all of them.
        dead_letters: where dead letters go (default: in memory); a
            :class:`~govbus.bus.deadletter.SqlDeadLetterStore` keeps them across restarts for
            ``govbus dlq``.

    Attributes:
        undeliverable: messages published that no subscription matched (and that answered no
            pending request).
        dead_letter_total: messages dead-lettered since the bus was created.
        abandoned: messages still outstanding when a ``close()`` drain timed out.

    Example:
        >>> import asyncio
        >>> from govbus.envelope import Message
        >>> async def main() -> list[str]:
        ...     seen: list[str] = []
        ...     async with InMemoryBus() as bus:
        ...         async def handle(delivery):
        ...             seen.append(delivery.message.type)
        ...         await bus.subscribe(handle, recipient="analyzer")
        ...         message = Message(type="portfolio.analyze", sender="web", to="analyzer")
        ...         await bus.publish(message)
        ...     return seen
        >>> asyncio.run(main())
        ['portfolio.analyze']
    """

    supports_request: bool = True
    supports_dead_letters: bool = True

    def __init__(
        self,
        *,
        max_pending: int = 1024,
        redelivery_base: float = 0.01,
        redelivery_max: float = 1.0,
        dead_letter_limit: int = 10_000,
        dead_letters: DeadLetterStore | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if redelivery_base < 0 or redelivery_max < redelivery_base:
            raise ValueError(
                "need 0 <= redelivery_base <= redelivery_max, got "
                f"{redelivery_base} and {redelivery_max}"
            )
        if dead_letter_limit < 1:
            raise ValueError(f"dead_letter_limit must be at least 1, got {dead_letter_limit}")
        self.max_pending = max_pending
        self.redelivery_base = redelivery_base
        self.redelivery_max = redelivery_max
        self.undeliverable = 0
        self.dead_letter_total = 0
        self.abandoned = 0
        self._dead: DeadLetterStore = dead_letters or MemoryDeadLetterStore(dead_letter_limit)
        self._dead_writes: set[asyncio.Task[None]] = set()
        #: Dead letters the store refused (a database that went away): kept here, newest
        #: ``dead_letter_limit``, and still listed by :meth:`dead_letters`.
        self.unstored_dead_letters: deque[DeadLetter] = deque(maxlen=dead_letter_limit)
        self._named_groups: dict[str, _Group] = {}
        self._active_groups: list[_Group] = []
        self._routes: dict[tuple[str, str | None], tuple[_Group, ...]] = {}
        self._subscriptions: list[_MemorySubscription] = []
        self._pending_requests: dict[str, asyncio.Future[Message]] = {}
        self._redeliveries: set[asyncio.Task[None]] = set()
        self._outstanding = 0
        self._sequence = 0
        self._started = False
        self._closing = False
        self._sealed = False
        self._closed = False
        self._closing_event = asyncio.Event()
        self._drained: asyncio.Event | None = None
        self._close_lock = asyncio.Lock()
        # Redeliveries due after this loop time are delivered early while draining.
        self._cutoff = float("inf")

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Mark the bus started. Idempotent; publishing and subscribing also work without it.

        Raises:
            BusClosedError: the bus was closed; an ``InMemoryBus`` does not restart.
        """
        if self._closing:
            raise BusClosedError("the in-memory bus is closed and cannot be restarted")
        self._started = True

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Refuse new publishes, wait for all accepted messages to settle, then stop workers.

        Waits until every queue is empty, every in-flight delivery is settled and every
        pending redelivery has been handled. After ``drain_timeout`` seconds it stops anyway,
        logs how many messages were abandoned and records that count in :attr:`abandoned`.
        Pending requests then fail with ``BusClosedError``. Idempotent: a second call waits
        for the first to finish.

        A handler should start ``close()`` in a new task rather than await it: awaited from a
        handler, the drain waits for that handler's own delivery until ``drain_timeout``.
        """
        async with self._close_lock:
            if self._closed:
                return
            self._closing = True
            loop = asyncio.get_running_loop()
            start = loop.time()
            grace = min(_DRAIN_GRACE_MAX, drain_timeout * _DRAIN_GRACE_FRACTION)
            self._cutoff = start + max(0.0, drain_timeout - grace)
            self._closing_event.set()
            for group in self._all_groups():
                if not group.members:
                    self._flush_orphans(group)
            if self._outstanding:
                self._drained = asyncio.Event()
                try:
                    await asyncio.wait_for(self._drained.wait(), drain_timeout)
                except TimeoutError:
                    self.abandoned = self._outstanding
                    logger.warning(
                        "bus close: drain timed out after %.3gs; %d message(s) abandoned",
                        drain_timeout,
                        self.abandoned,
                    )
            # Drained (or timed out): from here on nothing may enter, or it would be lost.
            self._sealed = True
            tasks: list[asyncio.Task[None]] = list(self._redeliveries)
            for sub in self._subscriptions:
                sub._stopping = True
                tasks.extend(w.task for w in sub._workers if w.task is not None)
            # A handler that awaits close() must not cancel or wait for its own worker.
            mine = {asyncio.current_task(), _running_worker.get()}
            tasks = [t for t in tasks if t not in mine]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._stored()
            for message_id, future in list(self._pending_requests.items()):
                if not future.done():
                    future.set_exception(
                        BusClosedError(f"bus closed while request {message_id} awaited a reply")
                    )
            self._closed = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def closing(self) -> bool:
        """True once :meth:`close` has started (it drains, then refuses publishes)."""
        return self._closing

    @property
    def outstanding(self) -> int:
        """Messages accepted and not yet acked or dead-lettered (queued, in flight, or
        waiting for redelivery), counted once per consumer group."""
        return self._outstanding

    # -- publishing ----------------------------------------------------------------------------

    async def publish(self, message: Message, *, address: str | None = None) -> None:
        """Deliver ``message`` to every matching consumer group.

        Args:
            message: the envelope; its ``attempt`` is reset to 1 for the first delivery.
            address: where to publish; defaults to ``message.to``.

        Raises:
            BusClosedError: :meth:`close` has finished draining.
        """
        if self._sealed:
            raise BusClosedError(
                f"bus is closed; message {message.id} (type {message.type}) was not published"
            )
        if address is None:
            address = message.to
        answered = False
        if self._pending_requests:
            cause = message.causation_id
            if cause is not None:
                future = self._pending_requests.pop(cause, None)
                if future is not None and not future.done():
                    future.set_result(message)
                    answered = True
        key = (message.type, address)
        groups = self._routes.get(key)
        if groups is None:
            groups = self._resolve(key, message, address)
        if not groups:
            if not answered:
                self.undeliverable += 1
                raise NoSubscriberError(
                    f"no subscription matches message {message.id} "
                    f"(type {message.type}, address {address!r}); it was not published"
                )
            return
        if message.attempt != 1:
            message = message.model_copy(update={"attempt": 1})
        for group in groups:
            delivery = _MemoryDelivery(self, group, message, address, 1)
            self._outstanding += 1
            queue = group.queue
            if queue.full():
                await self._put_waiting(group, delivery)
            else:
                queue.put_nowait(delivery)

    async def _put_waiting(self, group: _Group, delivery: _MemoryDelivery) -> None:
        """Backpressure: wait for room in ``group``'s queue. The caller counted ``delivery``
        as outstanding."""
        try:
            await group.queue.put(delivery)
        except BaseException:
            self._finish()  # never enqueued (the publisher was cancelled)
            raise
        if self._orphaned(group):
            self._flush_orphans(group)

    def _resolve(
        self, key: tuple[str, str | None], message: Message, address: str | None
    ) -> tuple[_Group, ...]:
        # Route.matches reads only the message type and the address, hence the cache key.
        groups = tuple(g for g in self._active_groups if g.route.matches(message, address))
        if len(self._routes) >= _ROUTE_CACHE_MAX:
            self._routes.clear()
        self._routes[key] = groups
        return groups

    async def request(
        self,
        message: Message,
        *,
        timeout: float,
        address: str | None = None,
    ) -> Message:
        """Publish ``message`` and return the first message published with ``causation_id``
        equal to its id (the reply is also routed normally).

        Raises:
            RequestTimeoutError: no reply within ``timeout`` seconds (publishing included).
            BusClosedError: the bus is closed, or closed before a reply came.
            ValueError: a request with the same message id is already waiting.
        """
        key = message.id
        if key in self._pending_requests:
            raise ValueError(f"a request for message {key} is already waiting for a reply")
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        # Registered before publishing: a handler may reply before publish() returns.
        self._pending_requests[key] = future
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                await self.publish(message, address=address)
                return await future
        except TimeoutError:
            if not deadline.expired():
                raise
            raise RequestTimeoutError(
                f"no reply to message {key} (type {message.type}) within {timeout:g}s"
            ) from None
        finally:
            if self._pending_requests.get(key) is future:
                del self._pending_requests[key]

    # -- subscribing ---------------------------------------------------------------------------

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
        """Deliver matching messages to ``handler`` with at most ``concurrency`` in flight.

        Args:
            handler: awaited with each delivery; returning unsettled acks, raising nacks.
            recipient: match the publish address exactly.
            types: one glob or several (``"portfolio.*"``) matched against the message type.
            group: consumer group name; members compete for messages. All members must use
                the same ``recipient`` and ``types``; the first member's ``max_attempts``
                applies to the group.
            concurrency: worker tasks (so concurrent handler calls) for this subscription.
            max_attempts: deliveries before a message is dead-lettered.

        Raises:
            ValueError: a bad argument, or a route different from the group's.
            BusClosedError: :meth:`close` has started.
        """
        if self._closing:
            raise BusClosedError("bus is closed; cannot subscribe")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        pattern: TypePattern | None = None
        if types is not None:
            pattern = TypePattern(types)
            if not pattern.patterns:
                raise ValueError("types must name at least one pattern (or be None for all)")
        route = Route(recipient=recipient, types=pattern)
        self._sequence += 1
        if group is None:
            label = f"{route.describe()}#{self._sequence}"
            target = _Group(None, label, route, max_attempts, self.max_pending)
        else:
            existing = self._named_groups.get(group)
            if existing is None:
                target = _Group(group, group, route, max_attempts, self.max_pending)
                self._named_groups[group] = target
            else:
                if existing.route != route:
                    raise ValueError(
                        f"group {group!r} routes {existing.route.describe()}; "
                        f"a member cannot route {route.describe()}"
                    )
                target = existing
                if max_attempts != target.max_attempts:
                    logger.debug(
                        "group %s keeps max_attempts=%d (first member's value)",
                        group,
                        target.max_attempts,
                    )
        name = target.label if group is None else f"{group}#{self._sequence}"
        sub = _MemorySubscription(self, name, target, handler)
        if not target.members:
            self._active_groups.append(target)
            self._routes.clear()
        target.members.append(sub)
        self._subscriptions.append(sub)
        for _ in range(concurrency):
            worker = _Worker()
            worker.task = asyncio.create_task(sub._work(worker), name=f"govbus-worker {name}")
            sub._workers.append(worker)
        return sub

    def _detach(self, sub: _MemorySubscription) -> None:
        group = sub._group
        group.members.remove(sub)
        if not group.members:
            self._active_groups.remove(group)
            self._routes.clear()
            if self._orphaned(group):
                self._flush_orphans(group)

    def _forget(self, sub: _MemorySubscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)

    def _all_groups(self) -> list[_Group]:
        groups = list(self._named_groups.values())
        groups.extend(g for g in self._active_groups if g.name is None)
        return groups

    # -- settlement (called by deliveries and workers) -----------------------------------------

    def _finish(self) -> None:
        self._outstanding -= 1
        if self._outstanding == 0 and self._drained is not None:
            self._drained.set()

    def _handler_failed(self, delivery: _MemoryDelivery, exc: BaseException, name: str) -> None:
        message = delivery._message
        if delivery._settled:
            logger.warning(
                "handler %s raised %s after settling message %s (type %s)",
                name,
                type(exc).__name__,
                message.id,
                message.type,
            )
            return
        logger.warning(
            "handler %s raised %s on message %s (type %s, attempt %d)",
            name,
            type(exc).__name__,
            message.id,
            message.type,
            delivery._attempt,
        )
        delivery._settled = True
        self._nacked(delivery, None, repr(exc))

    def _nacked(self, delivery: _MemoryDelivery, delay: float | None, reason: str) -> None:
        group = delivery._group
        attempt = delivery._attempt
        if attempt >= group.max_attempts:
            self._dead_letter(
                delivery,
                f"gave up after {attempt} attempt(s): {reason or 'nacked without a reason'}",
            )
            return
        if delay is None:
            delay = self.backoff(attempt)
        following = _MemoryDelivery(
            self,
            group,
            delivery._message.model_copy(update={"attempt": attempt + 1}),
            delivery._address,
            attempt + 1,
        )
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._redeliver(following, loop.time() + max(0.0, delay)))
        self._redeliveries.add(task)
        task.add_done_callback(self._redeliveries.discard)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before redelivering after attempt ``attempt`` was nacked without an
        explicit delay: ``redelivery_base * 2 ** (attempt - 1)``, capped at ``redelivery_max``.
        """
        # The exponent is capped so a huge max_attempts cannot overflow the float conversion.
        return min(self.redelivery_max, math.ldexp(self.redelivery_base, min(attempt - 1, 64)))

    async def _redeliver(self, delivery: _MemoryDelivery, due: float) -> None:
        """Put ``delivery`` back into its group's queue at loop time ``due``.

        Stays outstanding throughout, so ``close()`` waits for it; while draining, a delivery
        due after the drain cutoff goes back at once rather than being lost.
        """
        loop = asyncio.get_running_loop()
        if not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing_event.wait(), due - loop.time())
        if self._closing:
            # Backoff that would end too late in the drain window is skipped, not waited out.
            wait = due - loop.time() if due <= self._cutoff else 0.0
            if wait > 0:
                await asyncio.sleep(wait)
        group = delivery._group
        if self._orphaned(group):
            self._dead_letter(delivery, self._orphan_cause(group))
            return
        queue = group.queue
        if queue.full():
            await queue.put(delivery)
            if self._orphaned(group):
                self._flush_orphans(group)
        else:
            queue.put_nowait(delivery)

    def _orphaned(self, group: _Group) -> bool:
        """Whether ``group``'s queued messages can no longer be handled by anyone.

        A named group without members waits for a later member, unless the bus is closing;
        an anonymous group cannot be joined again once its one subscription has left.
        """
        return not group.members and (self._closing or group.name is None)

    def _orphan_cause(self, group: _Group) -> str:
        if self._closing:
            return f"bus closed while group {group.label} had no subscriber"
        return f"subscription {group.label} cancelled before delivery"

    def _flush_orphans(self, group: _Group) -> None:
        queue = group.queue
        cause = self._orphan_cause(group)
        while not queue.empty():
            self._dead_letter(queue.get_nowait(), cause)

    def _dead_letter(self, delivery: _MemoryDelivery, cause: str) -> None:
        message = delivery._message
        letter = DeadLetter(
            message=message,
            address=delivery._address,
            subscription=delivery._subscriber,
            attempts=delivery._attempt,
            cause=cause,
            at=datetime.now(UTC),
        )
        # The store may be a database: write in the background; close() and dead_letters()
        # wait for these writes.
        task = asyncio.get_running_loop().create_task(self._store(letter))
        self._dead_writes.add(task)
        task.add_done_callback(self._dead_writes.discard)
        self.dead_letter_total += 1
        logger.info(
            "dead-lettered message %s (type %s) for %s after %d attempt(s)",
            message.id,
            message.type,
            delivery._subscriber,
            delivery._attempt,
        )
        self._finish()

    async def _store(self, letter: DeadLetter) -> None:
        try:
            await self._dead.put(letter)
        except Exception as exc:
            self.unstored_dead_letters.append(letter)
            logger.error(
                "could not store dead letter %s for message %s (type %s, cause %s) in %s: %s; "
                "kept in this process's memory (bus.unstored_dead_letters) instead",
                letter.id,
                letter.message.id,
                letter.message.type,
                letter.cause,
                self._dead.where,
                exc,
            )

    async def _stored(self) -> None:
        while self._dead_writes:
            await asyncio.gather(*list(self._dead_writes))

    @property
    def dead_letter_store(self) -> DeadLetterStore:
        """Where this bus keeps dead letters."""
        return self._dead

    async def dead_letters(self) -> list[DeadLetter]:
        """Dead letters, oldest first (the store may keep only the newest), including any the
        store refused (:attr:`unstored_dead_letters`)."""
        await self._stored()
        stored = await self._dead.entries()
        if not self.unstored_dead_letters:
            return stored
        return sorted([*stored, *self.unstored_dead_letters], key=lambda d: (d.at, d.id))


if TYPE_CHECKING:
    from govbus.bus.base import Bus

    # mypy checks here that InMemoryBus structurally satisfies the Bus protocol.
    _PROTOCOL_CHECK: type[Bus] = InMemoryBus
