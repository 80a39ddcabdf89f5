"""The bus conformance suite: one set of behaviour tests that every ``Bus`` adapter passes.

Subclass :class:`BusConformance` once per adapter, with a ``Test`` prefix so pytest collects
the subclass, and implement :meth:`BusConformance.make_bus`::

    class TestInMemoryBus(BusConformance):
        supports_backpressure_hint = True

        async def make_bus(self, *, max_pending: int | None = None) -> Bus:
            return InMemoryBus(max_pending=max_pending or 1024)

The tests use only the :class:`~govbus.bus.base.Bus` protocol. They wait for what they expect
with generous timeouts (:attr:`BusConformance.wait_timeout`) instead of sleeping, so a slower
transport passes as long as it is correct; the only fixed sleeps are short ones that check
something does *not* happen (:attr:`BusConformance.absence_wait`). A capability an adapter lacks
is a class attribute set to ``False``; its tests skip with the reason.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

from govbus.bus.base import Bus, DeadLetter, Delivery, DeliveryHandler
from govbus.envelope import Message
from govbus.errors import BusClosedError, NoSubscriberError, RequestTimeoutError

__all__ = ["BusConformance"]


def _message(type: str = "task.do", *, to: str | None = None, n: int = 0, **fields: Any) -> Message:
    return Message(type=type, sender="conformance", to=to, payload={"n": n}, **fields)


class _Collector:
    """A handler that records what it receives, for assertions."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.deliveries: list[tuple[int, int]] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.messages.append(delivery.message)
        self.deliveries.append((delivery.attempt, delivery.message.attempt))

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.messages]

    @property
    def types(self) -> list[str]:
        return [m.type for m in self.messages]


async def _publish_unrouted(bus: Bus, message: Message) -> None:
    """Publish a message no subscription may receive. An adapter either refuses it
    (``NoSubscriberError``) or retains it (a broker stream); it is never delivered elsewhere."""
    with contextlib.suppress(NoSubscriberError):
        await bus.publish(message)


class BusConformance(abc.ABC):
    """Behaviour every :class:`~govbus.bus.base.Bus` adapter must show.

    Not collected by itself (no ``Test`` prefix); subclass it per adapter. Override the class
    attributes below to describe the adapter.
    """

    #: Mirrors ``Bus.supports_request``; request/reply tests skip when False.
    supports_request: ClassVar[bool] = True
    #: Mirrors ``Bus.supports_dead_letters``; dead-letter tests skip when False.
    supports_dead_letters: ClassVar[bool] = True
    #: True if ``make_bus(max_pending=n)`` really bounds each consumer's queue to ``n``
    #: messages; the backpressure test skips otherwise.
    supports_backpressure_hint: ClassVar[bool] = False
    #: True if a publish that no subscription matches raises ``NoSubscriberError``; False for
    #: a broker that retains such messages (a stream) until a consumer comes.
    refuses_unroutable: ClassVar[bool] = True
    #: The explicit ``nack(delay=...)`` the tests use. Raise it for a broker whose shortest
    #: redelivery delay is longer; keep it well under ``wait_timeout``.
    redelivery_delay: ClassVar[float] = 0.0
    #: How long to wait for something that should happen (delivery, redelivery, drain).
    wait_timeout: ClassVar[float] = 5.0
    #: How long to watch for something that should *not* happen.
    absence_wait: ClassVar[float] = 0.2
    #: ``drain_timeout`` passed to ``close()``.
    drain_timeout: ClassVar[float] = 5.0

    @abc.abstractmethod
    async def make_bus(self, *, max_pending: int | None = None) -> Bus:
        """Return a new, not yet started bus with no subscriptions.

        Args:
            max_pending: a hint to bound each consumer's queue to this many messages;
                adapters that cannot honour it ignore it and leave
                ``supports_backpressure_hint`` False.
        """

    # -- fixtures and helpers ------------------------------------------------------------------

    @pytest.fixture
    async def bus(self) -> AsyncIterator[Bus]:
        bus = await self.make_bus()
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close(drain_timeout=self.drain_timeout)

    async def eventually(self, condition: Callable[[], bool], what: str) -> None:
        """Wait until ``condition()`` holds, failing with ``what`` after ``wait_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while not condition():
            if loop.time() > deadline:
                pytest.fail(f"timed out after {self.wait_timeout}s waiting for {what}")
            await asyncio.sleep(0.005)

    async def wait_event(self, event: asyncio.Event, what: str) -> None:
        """Wait for ``event``, failing with ``what`` after ``wait_timeout``."""
        try:
            await asyncio.wait_for(event.wait(), self.wait_timeout)
        except TimeoutError:
            pytest.fail(f"timed out after {self.wait_timeout}s waiting for {what}")

    # -- capabilities --------------------------------------------------------------------------

    async def test_capabilities_match_bus(self, bus: Bus) -> None:
        """The suite's capability attributes agree with the bus's own."""
        assert bus.supports_request is self.supports_request
        assert bus.supports_dead_letters is self.supports_dead_letters

    # -- routing -------------------------------------------------------------------------------

    async def test_publish_by_recipient(self, bus: Bus) -> None:
        """A recipient subscription gets messages addressed to it and no others."""
        alice, bob = _Collector(), _Collector()
        await bus.subscribe(alice, recipient="alice")
        await bus.subscribe(bob, recipient="bob")
        to_alice = _message(to="alice")
        to_bob = _message(to="bob")
        await bus.publish(to_bob)
        await bus.publish(to_alice)
        await self.eventually(lambda: alice.ids == [to_alice.id], "alice's message")
        await self.eventually(lambda: bob.ids == [to_bob.id], "bob's message")
        await asyncio.sleep(self.absence_wait)
        assert alice.ids == [to_alice.id]
        assert bob.ids == [to_bob.id]

    async def test_explicit_address_overrides_message_to(self, bus: Bus) -> None:
        """``publish(address=...)`` routes by that address, and the delivery reports it."""
        addresses: list[str | None] = []
        got = asyncio.Event()

        async def inbox(delivery: Delivery) -> None:
            addresses.append(delivery.address)
            got.set()

        wrong = _Collector()
        await bus.subscribe(inbox, recipient="inbox-1")
        await bus.subscribe(wrong, recipient="svc")
        await bus.publish(_message(to="svc"), address="inbox-1")
        await self.wait_event(got, "the message at the explicit address")
        await asyncio.sleep(self.absence_wait)
        assert addresses == ["inbox-1"]
        assert wrong.ids == []

    async def test_publish_by_type_glob(self, bus: Bus) -> None:
        """A type-glob subscription gets exactly the messages whose type matches the glob."""
        seen = _Collector()
        await bus.subscribe(seen, types="portfolio.*")
        await _publish_unrouted(bus, _message("risk.score"))
        await bus.publish(_message("portfolio.analyze"))
        await _publish_unrouted(bus, _message("portfolios.list"))
        await bus.publish(_message("portfolio.analyze.result"))
        # Ordering per consumer puts any wrongly routed message before the last one.
        await self.eventually(lambda: "portfolio.analyze.result" in seen.types, "last match")
        assert seen.types == ["portfolio.analyze", "portfolio.analyze.result"]

    async def test_type_list_matches_any_glob(self, bus: Bus) -> None:
        """A list of globs matches a message that matches any one of them."""
        seen = _Collector()
        await bus.subscribe(seen, types=["alpha.*", "beta.exact"])
        for kind in ("beta.other", "alpha.one", "gamma.one", "beta.exact", "alpha.two"):
            await _publish_unrouted(bus, _message(kind))
        await self.eventually(lambda: "alpha.two" in seen.types, "last match")
        assert seen.types == ["alpha.one", "beta.exact", "alpha.two"]

    async def test_recipient_and_type_must_both_match(self, bus: Bus) -> None:
        """With recipient and types, only messages matching both are delivered."""
        seen = _Collector()
        await bus.subscribe(seen, recipient="alice", types="task.*")
        await _publish_unrouted(bus, _message("note.add", to="alice"))
        await _publish_unrouted(bus, _message("task.do", to="bob"))
        await _publish_unrouted(bus, _message("task.do"))
        await bus.publish(_message("task.done", to="alice"))
        await self.eventually(lambda: bool(seen.messages), "the matching message")
        await asyncio.sleep(self.absence_wait)
        assert [(m.type, m.to) for m in seen.messages] == [("task.done", "alice")]

    async def test_subscriptions_without_group_each_get_a_copy(self, bus: Bus) -> None:
        """Every subscription without a group receives its own copy of a message."""
        collectors = [_Collector() for _ in range(3)]
        for collector in collectors:
            await bus.subscribe(collector, types="task.*")
        message = _message("task.do")
        await bus.publish(message)
        await self.eventually(lambda: all(c.ids for c in collectors), "every copy")
        await asyncio.sleep(self.absence_wait)
        assert [c.ids for c in collectors] == [[message.id]] * 3

    # -- consumer groups -----------------------------------------------------------------------

    async def test_group_members_compete_each_message_once(self, bus: Bus) -> None:
        """Members of one group share the stream: each message is handled exactly once."""
        a, b = _Collector(), _Collector()
        await bus.subscribe(a, recipient="worker", group="workers", concurrency=2)
        await bus.subscribe(b, recipient="worker", group="workers", concurrency=2)
        sent = [_message(to="worker", n=i) for i in range(40)]
        for message in sent:
            await bus.publish(message)
        await self.eventually(lambda: len(a.ids) + len(b.ids) >= len(sent), "all 40 messages")
        await asyncio.sleep(self.absence_wait)
        counts = Counter(a.ids + b.ids)
        assert set(counts) == {m.id for m in sent}
        assert max(counts.values()) == 1, "a message reached more than one group member"

    async def test_group_spreads_work_over_members(self, bus: Bus) -> None:
        """While one member is busy, another member of the group takes the next message."""
        busy: dict[str, list[str]] = {"a": [], "b": []}
        both_busy = asyncio.Event()

        def member(label: str) -> DeliveryHandler:
            async def handle(delivery: Delivery) -> None:
                busy[label].append(delivery.message.id)
                if busy["a"] and busy["b"]:
                    both_busy.set()
                await asyncio.wait_for(both_busy.wait(), self.wait_timeout)

            return handle

        await bus.subscribe(member("a"), recipient="worker", group="workers")
        await bus.subscribe(member("b"), recipient="worker", group="workers")
        first, second = _message(to="worker", n=1), _message(to="worker", n=2)
        await bus.publish(first)
        await bus.publish(second)
        await self.wait_event(both_busy, "both members to hold a message at once")
        assert sorted(busy["a"] + busy["b"]) == sorted([first.id, second.id])

    async def test_single_consumer_preserves_order(self, bus: Bus) -> None:
        """One subscription with concurrency 1 handles messages in publish order."""
        seen = _Collector()
        await bus.subscribe(seen, recipient="ordered")
        sent = [_message(to="ordered", n=i) for i in range(50)]
        for message in sent:
            await bus.publish(message)
        await self.eventually(lambda: len(seen.ids) >= len(sent), "all 50 messages")
        assert seen.ids == [m.id for m in sent]

    async def test_concurrency_limit_respected(self, bus: Bus) -> None:
        """A subscription never has more than ``concurrency`` handlers in flight."""
        limit = 3
        in_flight = 0
        peak = 0
        done: list[str] = []
        full = asyncio.Event()
        gate = asyncio.Event()

        async def handle(delivery: Delivery) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == limit:
                full.set()
            try:
                await asyncio.wait_for(gate.wait(), self.wait_timeout)
            finally:
                in_flight -= 1
            done.append(delivery.message.id)

        await bus.subscribe(handle, recipient="pool", concurrency=limit)
        try:
            for i in range(10):
                await bus.publish(_message(to="pool", n=i))
            await self.wait_event(full, f"{limit} handlers in flight")
            await asyncio.sleep(self.absence_wait)
            assert in_flight == limit
        finally:
            gate.set()
        await self.eventually(lambda: len(done) >= 10, "all 10 messages")
        assert peak == limit

    # -- settlement and redelivery -------------------------------------------------------------

    async def test_ack_prevents_redelivery(self, bus: Bus) -> None:
        """An acked message is not redelivered, even if the handler raises afterwards."""
        seen: list[bool] = []

        async def handle(delivery: Delivery) -> None:
            await delivery.ack()
            seen.append(delivery.settled)
            raise RuntimeError("fails after ack")

        await bus.subscribe(handle, recipient="acker", max_attempts=3)
        await bus.publish(_message(to="acker"))
        await self.eventually(lambda: bool(seen), "the delivery")
        await asyncio.sleep(max(self.absence_wait, self.redelivery_delay * 2))
        assert seen == [True]
        if self.supports_dead_letters:
            assert await bus.dead_letters() == []

    async def test_returning_without_settling_acks(self, bus: Bus) -> None:
        """A handler that returns without settling acks: no redelivery."""
        seen = _Collector()
        await bus.subscribe(seen, recipient="quiet", max_attempts=3)
        await bus.publish(_message(to="quiet"))
        await self.eventually(lambda: bool(seen.ids), "the delivery")
        await asyncio.sleep(max(self.absence_wait, self.redelivery_delay * 2))
        assert seen.deliveries == [(1, 1)]

    async def test_nack_redelivers_with_incremented_attempt(self, bus: Bus) -> None:
        """``nack`` redelivers; both ``delivery.attempt`` and ``message.attempt`` count up."""
        seen: list[tuple[str, int, int]] = []

        async def handle(delivery: Delivery) -> None:
            seen.append((delivery.message.id, delivery.attempt, delivery.message.attempt))
            if delivery.attempt < 3:
                await delivery.nack(delay=self.redelivery_delay, reason="not yet")
                assert delivery.settled

        await bus.subscribe(handle, recipient="retry", max_attempts=5)
        message = _message(to="retry")
        await bus.publish(message)
        await self.eventually(lambda: len(seen) >= 3, "the third attempt")
        await asyncio.sleep(self.absence_wait)
        assert seen == [(message.id, 1, 1), (message.id, 2, 2), (message.id, 3, 3)]

    async def test_raising_handler_is_redelivered(self, bus: Bus) -> None:
        """A handler that raises nacks: the message comes again with the next attempt."""
        seen = _Collector()

        async def handle(delivery: Delivery) -> None:
            await seen(delivery)
            if delivery.attempt == 1:
                raise ValueError("transient failure")

        await bus.subscribe(handle, recipient="flaky", max_attempts=3)
        await bus.publish(_message(to="flaky"))
        await self.eventually(lambda: len(seen.ids) >= 2, "the redelivery")
        await asyncio.sleep(self.absence_wait)
        assert seen.deliveries == [(1, 1), (2, 2)]
        assert len(set(seen.ids)) == 1

    async def test_exhausted_attempts_dead_letter_with_cause(self, bus: Bus) -> None:
        """After ``max_attempts`` nacks the message is dead-lettered with cause and attempts."""
        if not self.supports_dead_letters:
            pytest.skip("adapter has no dead-letter store")
        attempts: list[int] = []

        async def handle(delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            await delivery.nack(delay=self.redelivery_delay, reason="downstream unavailable")

        await bus.subscribe(handle, recipient="doomed", max_attempts=3)
        message = _message(to="doomed")
        await bus.publish(message)
        letters = await self._dead_letters(bus, 1)
        assert [(d.message.id, d.attempts, d.address) for d in letters] == [
            (message.id, 3, "doomed")
        ]
        assert "downstream unavailable" in letters[0].cause
        await asyncio.sleep(self.absence_wait)
        assert attempts == [1, 2, 3]

    async def test_raising_past_max_attempts_dead_letters_with_exception(self, bus: Bus) -> None:
        """A handler that keeps raising dead-letters the message; the cause names the error."""
        if not self.supports_dead_letters:
            pytest.skip("adapter has no dead-letter store")

        async def handle(delivery: Delivery) -> None:
            raise LookupError("no such account")

        await bus.subscribe(handle, recipient="broken", max_attempts=2)
        message = _message(to="broken")
        await bus.publish(message)
        letters = await self._dead_letters(bus, 1)
        assert letters[0].message.id == message.id
        assert letters[0].attempts == 2
        assert "LookupError" in letters[0].cause

    async def test_term_dead_letters_immediately(self, bus: Bus) -> None:
        """``term`` dead-letters at once, without using the remaining attempts."""
        if not self.supports_dead_letters:
            pytest.skip("adapter has no dead-letter store")
        attempts: list[int] = []

        async def handle(delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            await delivery.term("payload can never be valid")

        await bus.subscribe(handle, recipient="strict", max_attempts=5)
        message = _message(to="strict")
        await bus.publish(message)
        letters = await self._dead_letters(bus, 1)
        assert (letters[0].message.id, letters[0].attempts) == (message.id, 1)
        assert "payload can never be valid" in letters[0].cause
        await asyncio.sleep(max(self.absence_wait, self.redelivery_delay * 2))
        assert attempts == [1]

    async def _dead_letters(self, bus: Bus, count: int) -> list[DeadLetter]:
        letters: list[DeadLetter] = []

        async def poll() -> None:
            nonlocal letters
            while len(letters) < count:
                letters = await bus.dead_letters()
                await asyncio.sleep(0.005)

        try:
            await asyncio.wait_for(poll(), self.wait_timeout)
        except TimeoutError:
            pytest.fail(f"timed out waiting for {count} dead letter(s); have {letters!r}")
        return letters

    # -- request / reply -----------------------------------------------------------------------

    async def test_request_returns_reply(self, bus: Bus) -> None:
        """``request`` returns the message caused by the request, not an unrelated one."""
        if not self.supports_request:
            pytest.skip("adapter does not support request/reply")

        async def service(delivery: Delivery) -> None:
            asked = delivery.message
            noise = _message("svc.noise", to=asked.sender, causation_id="someone-else")
            await _publish_unrouted(bus, noise)
            await bus.publish(asked.reply("svc.result", {"answer": 42}, sender="svc"))

        await bus.subscribe(service, recipient="svc")
        question = _message("svc.ask", to="svc")
        reply = await bus.request(question, timeout=self.wait_timeout)
        assert reply.causation_id == question.id
        assert (reply.type, reply.payload) == ("svc.result", {"answer": 42})

    async def test_request_times_out(self, bus: Bus) -> None:
        """``request`` raises ``RequestTimeoutError`` when no reply comes in time."""
        if not self.supports_request:
            pytest.skip("adapter does not support request/reply")
        silent = _Collector()
        await bus.subscribe(silent, recipient="silent")
        with pytest.raises(RequestTimeoutError):
            await bus.request(_message("svc.ask", to="silent"), timeout=0.2)
        assert len(silent.ids) == 1

    # -- backpressure --------------------------------------------------------------------------

    async def test_publish_waits_when_queue_full(self) -> None:
        """With a full queue, ``publish`` waits (nothing dropped) until the consumer moves."""
        if not self.supports_backpressure_hint:
            pytest.skip("adapter ignores the max_pending hint")
        bus = await self.make_bus(max_pending=2)
        await bus.start()
        gate = asyncio.Event()
        started = asyncio.Event()
        handled: list[int] = []

        async def handle(delivery: Delivery) -> None:
            started.set()
            await asyncio.wait_for(gate.wait(), self.wait_timeout)
            handled.append(delivery.message.payload["n"])

        try:
            await bus.subscribe(handle, recipient="slow")
            await bus.publish(_message(to="slow", n=0))
            await self.wait_event(started, "the consumer to take the first message")
            await bus.publish(_message(to="slow", n=1))
            await bus.publish(_message(to="slow", n=2))
            blocked = asyncio.create_task(bus.publish(_message(to="slow", n=3)))
            await asyncio.sleep(self.absence_wait)
            assert not blocked.done(), "publish returned while the queue was full"
            gate.set()
            await asyncio.wait_for(blocked, self.wait_timeout)
            await self.eventually(lambda: len(handled) >= 4, "all four messages")
            assert handled == [0, 1, 2, 3]
        finally:
            gate.set()
            await bus.close(drain_timeout=self.drain_timeout)

    # -- lifecycle -----------------------------------------------------------------------------

    async def test_close_drains_queued_and_in_flight(self, bus: Bus) -> None:
        """``close`` waits for in-flight and queued messages: all published ones are handled."""
        gate = asyncio.Event()
        started = asyncio.Event()
        handled: list[int] = []

        async def handle(delivery: Delivery) -> None:
            n = delivery.message.payload["n"]
            if n == 0:
                started.set()
                await asyncio.wait_for(gate.wait(), self.wait_timeout)
            handled.append(n)

        await bus.subscribe(handle, recipient="drain")
        for i in range(10):
            await bus.publish(_message(to="drain", n=i))
        await self.wait_event(started, "the first message")
        closer = asyncio.create_task(bus.close(drain_timeout=self.drain_timeout))
        try:
            await asyncio.sleep(self.absence_wait)
            assert not closer.done(), "close returned while a handler was still running"
        finally:
            gate.set()
        await asyncio.wait_for(closer, self.wait_timeout + self.drain_timeout)
        assert handled == list(range(10))

    async def test_close_is_idempotent(self, bus: Bus) -> None:
        """Closing an already closed bus is harmless."""
        await bus.close(drain_timeout=self.drain_timeout)
        await bus.close(drain_timeout=self.drain_timeout)
        with pytest.raises(BusClosedError):
            await bus.publish(_message(to="anyone"))

    async def test_publish_to_nobody_is_refused_not_dropped(self, bus: Bus) -> None:
        """A message nothing would receive raises ``NoSubscriberError``: never a silent loss."""
        if not self.refuses_unroutable:
            pytest.skip("adapter retains unroutable messages (a broker stream) instead")
        await bus.start()
        with pytest.raises(NoSubscriberError):
            await bus.publish(Message(type="orphan.event", sender="t", to="nobody-home"))

    async def test_publish_after_close_raises(self, bus: Bus) -> None:
        """Publishing after ``close`` raises ``BusClosedError``."""
        seen = _Collector()
        await bus.subscribe(seen, recipient="late")
        await bus.close(drain_timeout=self.drain_timeout)
        with pytest.raises(BusClosedError):
            await bus.publish(_message(to="late"))
        assert seen.ids == []

    async def test_unsubscribe_stops_delivery(self, bus: Bus) -> None:
        """After ``unsubscribe`` a subscription receives nothing; others still do."""
        leaving, staying = _Collector(), _Collector()
        sub = await bus.subscribe(leaving, recipient="topic")
        await bus.subscribe(staying, recipient="topic")
        before, after = _message(to="topic", n=1), _message(to="topic", n=2)
        await bus.publish(before)
        await self.eventually(lambda: leaving.ids == [before.id], "the first message")
        await sub.unsubscribe()
        await bus.publish(after)
        await self.eventually(lambda: after.id in staying.ids, "the control subscriber")
        await asyncio.sleep(self.absence_wait)
        assert leaving.ids == [before.id]
