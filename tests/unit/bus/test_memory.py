"""``InMemoryBus``-specific behaviour: bounds, drain, durability, logging, bookkeeping.

Behaviour every bus shares lives in ``tests/conformance``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from govbus.bus.base import Bus, Delivery, Subscription
from govbus.bus.memory import InMemoryBus
from govbus.envelope import Message
from govbus.errors import BusClosedError, NoSubscriberError, RequestTimeoutError

WAIT = 5.0


def _msg(type: str = "task.do", to: str | None = "worker", n: int = 0, **kw: object) -> Message:
    return Message(type=type, sender="tester", to=to, payload={"n": n}, **kw)


async def _until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - polls state the bus does not signal
            await asyncio.sleep(0.002)

    await asyncio.wait_for(poll(), WAIT)


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryBus]:
    bus = InMemoryBus()
    try:
        yield bus
    finally:
        await bus.close(drain_timeout=2.0)


# -- construction ------------------------------------------------------------------------------


def test_is_a_bus_with_request_and_dead_letters() -> None:
    """``InMemoryBus`` satisfies the ``Bus`` protocol and declares both capabilities."""
    bus = InMemoryBus()
    assert isinstance(bus, Bus)
    assert bus.supports_request is True
    assert bus.supports_dead_letters is True


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_pending": 0},
        {"redelivery_base": -0.1},
        {"redelivery_base": 2.0, "redelivery_max": 1.0},
        {"dead_letter_limit": 0},
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    """Impossible bounds are refused at construction."""
    with pytest.raises(ValueError, match=r"must|need"):
        InMemoryBus(**kwargs)  # type: ignore[arg-type]


def test_backoff_doubles_then_caps() -> None:
    """The default nack delay is ``base * 2 ** (attempt - 1)``, capped at ``redelivery_max``."""
    bus = InMemoryBus(redelivery_base=0.1, redelivery_max=0.5)
    assert [bus.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert bus.backoff(100_000) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"types": []}, "at least one pattern"),
        ({"types": "Bad Glob"}, "invalid type pattern"),
    ],
)
async def test_subscribe_rejects_bad_arguments(
    bus: InMemoryBus, kwargs: dict[str, object], match: str
) -> None:
    """Bad subscribe arguments fail loudly instead of silently matching nothing."""

    async def handle(delivery: Delivery) -> None:
        return None

    with pytest.raises(ValueError, match=match):
        await bus.subscribe(handle, **kwargs)  # type: ignore[arg-type]


# -- publishing --------------------------------------------------------------------------------


async def test_unmatched_publish_is_refused_and_counted(bus: InMemoryBus) -> None:
    """A message nobody subscribes to is refused with NoSubscriberError, never dropped."""
    message = _msg(to="nobody")
    with pytest.raises(NoSubscriberError, match=message.id):
        await bus.publish(message)
    with pytest.raises(NoSubscriberError, match="'nobody'"):
        await bus.publish(_msg(to="nobody"))
    assert bus.undeliverable == 2
    assert bus.outstanding == 0


async def test_route_cache_sees_new_and_removed_subscriptions(bus: InMemoryBus) -> None:
    """Routing reflects subscribe and unsubscribe even after a route was cached."""
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.message.id)

    with pytest.raises(NoSubscriberError):
        await bus.publish(_msg(to="late"))
    assert bus.undeliverable == 1
    sub = await bus.subscribe(handle, recipient="late")
    second = _msg(to="late")
    await bus.publish(second)
    await _until(lambda: seen == [second.id])
    await sub.unsubscribe()
    with pytest.raises(NoSubscriberError):
        await bus.publish(_msg(to="late"))
    assert bus.undeliverable == 2


async def test_first_delivery_resets_attempt_to_one(bus: InMemoryBus) -> None:
    """The bus owns ``attempt``: a republished message starts again at attempt 1."""
    seen: list[tuple[int, int]] = []

    async def handle(delivery: Delivery) -> None:
        seen.append((delivery.attempt, delivery.message.attempt))

    await bus.subscribe(handle, recipient="worker")
    await bus.publish(_msg(attempt=4))
    await _until(lambda: bool(seen))
    assert seen == [(1, 1)]


async def test_publish_after_close_names_the_message(bus: InMemoryBus) -> None:
    """``BusClosedError`` after close names the refused message id."""
    await bus.close()
    message = _msg()
    with pytest.raises(BusClosedError, match=message.id):
        await bus.publish(message)


async def test_full_queue_blocks_publish_without_dropping() -> None:
    """With ``max_pending=1`` a second queued message makes publish wait, then go through."""
    bus = InMemoryBus(max_pending=1)
    gate = asyncio.Event()
    started = asyncio.Event()
    handled: list[int] = []

    async def handle(delivery: Delivery) -> None:
        started.set()
        await gate.wait()
        handled.append(delivery.message.payload["n"])

    try:
        await bus.subscribe(handle, recipient="worker")
        await bus.publish(_msg(n=0))
        await asyncio.wait_for(started.wait(), WAIT)
        await bus.publish(_msg(n=1))  # fills the one-slot queue
        blocked = asyncio.create_task(bus.publish(_msg(n=2)))
        await asyncio.sleep(0.05)
        assert not blocked.done()
        assert bus.outstanding == 3
        gate.set()
        await asyncio.wait_for(blocked, WAIT)
        await _until(lambda: len(handled) == 3)
        assert handled == [0, 1, 2]
    finally:
        gate.set()
        await bus.close()


async def test_cancelled_blocked_publish_is_not_counted() -> None:
    """A publisher cancelled while waiting for room leaves nothing outstanding behind."""
    bus = InMemoryBus(max_pending=1)
    gate = asyncio.Event()
    started = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        started.set()
        await gate.wait()

    try:
        await bus.subscribe(handle, recipient="worker")
        await bus.publish(_msg(n=0))
        await asyncio.wait_for(started.wait(), WAIT)
        await bus.publish(_msg(n=1))
        blocked = asyncio.create_task(bus.publish(_msg(n=2)))
        await asyncio.sleep(0.01)
        assert bus.outstanding == 3
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        assert bus.outstanding == 2
    finally:
        gate.set()
        await bus.close(drain_timeout=2.0)
    assert bus.abandoned == 0


# -- settlement --------------------------------------------------------------------------------


async def test_settling_twice_is_a_no_op(bus: InMemoryBus) -> None:
    """The first settlement wins: a later nack or term neither redelivers nor dead-letters."""
    seen: list[int] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.attempt)
        await delivery.ack()
        await delivery.nack(reason="too late")
        await delivery.term("too late")

    await bus.subscribe(handle, recipient="worker")
    await bus.publish(_msg())
    await _until(lambda: bool(seen) and bus.outstanding == 0)
    await asyncio.sleep(0.05)
    assert seen == [1]
    assert await bus.dead_letters() == []
    assert bus.outstanding == 0


async def test_nack_without_delay_waits_for_backoff() -> None:
    """A nack without delay waits at least the exponential backoff before redelivering."""
    bus = InMemoryBus(redelivery_base=0.05, redelivery_max=1.0)
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def handle(delivery: Delivery) -> None:
        times.append(loop.time())
        if delivery.attempt < 3:
            await delivery.nack()

    try:
        await bus.subscribe(handle, recipient="worker")
        await bus.publish(_msg())
        await _until(lambda: len(times) == 3)
    finally:
        await bus.close()
    # The loop may fire a timer up to its clock resolution early.
    slack = 0.01
    assert times[1] - times[0] >= 0.05 - slack
    assert times[2] - times[1] >= 0.10 - slack


async def test_handler_exception_is_logged_without_payload(
    bus: InMemoryBus, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing handler is logged with message id, type and exception class, never content."""
    failed = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        failed.set()
        raise ValueError(f"bad account {delivery.message.payload['account']}")

    caplog.set_level(logging.DEBUG, logger="govbus.bus")
    await bus.subscribe(handle, recipient="worker", max_attempts=1)
    message = Message(type="task.do", sender="t", to="worker", payload={"account": "IBAN-SECRET"})
    await bus.publish(message)
    await asyncio.wait_for(failed.wait(), WAIT)
    await _until(lambda: bus.dead_letter_total == 1)
    records = [r for r in caplog.records if r.name == "govbus.bus"]
    text = "\n".join(r.getMessage() for r in records)
    assert message.id in text
    assert "task.do" in text
    assert "ValueError" in text
    assert "IBAN-SECRET" not in text
    assert all(r.exc_info is None for r in records)
    letters = await bus.dead_letters()
    assert "IBAN-SECRET" in letters[0].cause  # the full repr is kept, but only in memory


async def test_a_dead_letter_the_store_refuses_is_kept_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The dead-letter database went away: the letter stays listed, and the log says where."""
    from govbus.bus.base import DeadLetter
    from govbus.bus.deadletter import MemoryDeadLetterStore
    from govbus.errors import DeadLetterError

    class Down(MemoryDeadLetterStore):
        async def put(self, letter: DeadLetter) -> None:
            raise DeadLetterError("cannot write dead letter: connection refused")

    bus = InMemoryBus(dead_letters=Down())

    async def handle(delivery: Delivery) -> None:
        await delivery.term("poison")

    await bus.subscribe(handle, recipient="worker")
    message = Message(type="task.do", sender="t", to="worker")
    await bus.publish(message)
    await _until(lambda: bus.dead_letter_total == 1)
    (letter,) = await bus.dead_letters()
    assert letter.message.id == message.id and letter.cause == "poison"
    assert list(bus.unstored_dead_letters) == [letter]
    assert "kept in this process's memory" in caplog.text and message.id in caplog.text
    await bus.close()


async def test_worker_survives_handler_exceptions(bus: InMemoryBus) -> None:
    """A raising handler (even one raising CancelledError itself) does not kill its worker."""
    handled: list[int] = []

    async def handle(delivery: Delivery) -> None:
        n = delivery.message.payload["n"]
        if n == 0:
            raise RuntimeError("boom")
        if n == 1:
            raise asyncio.CancelledError  # not a cancellation of the worker
        handled.append(n)

    await bus.subscribe(handle, recipient="worker", max_attempts=1)
    for n in range(3):
        await bus.publish(_msg(n=n))
    await _until(lambda: handled == [2])
    await _until(lambda: bus.dead_letter_total == 2)
    causes = [d.cause for d in await bus.dead_letters()]
    assert "RuntimeError" in causes[0]
    assert "CancelledError" in causes[1]


async def test_dead_letters_are_bounded_and_counted() -> None:
    """Only the newest ``dead_letter_limit`` dead letters are kept; all are counted."""
    bus = InMemoryBus(dead_letter_limit=3)

    async def handle(delivery: Delivery) -> None:
        await delivery.term("rejected")

    try:
        sub = await bus.subscribe(handle, recipient="worker")
        sent = [_msg(n=n) for n in range(5)]
        for message in sent:
            await bus.publish(message)
        await _until(lambda: bus.dead_letter_total == 5)
    finally:
        await bus.close()
    letters = await bus.dead_letters()
    assert [d.message.id for d in letters] == [m.id for m in sent[2:]]
    assert {d.subscription for d in letters} == {sub.name}


# -- groups and subscriptions ------------------------------------------------------------------


async def test_group_members_must_share_a_route(bus: InMemoryBus) -> None:
    """A group is one consumer: a member with a different route is refused."""

    async def handle(delivery: Delivery) -> None:
        return None

    await bus.subscribe(handle, recipient="a", group="g")
    with pytest.raises(ValueError, match="group 'g'"):
        await bus.subscribe(handle, recipient="b", group="g")


async def test_group_keeps_first_members_max_attempts(bus: InMemoryBus) -> None:
    """The first member's ``max_attempts`` applies to the whole group."""
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        await delivery.nack(delay=0)

    first = await bus.subscribe(handle, recipient="w", group="g", max_attempts=2)
    await bus.subscribe(handle, recipient="w", group="g", max_attempts=9)
    await first.unsubscribe()
    await bus.publish(_msg(to="w"))
    await _until(lambda: bus.dead_letter_total == 1)
    assert attempts == [1, 2]


async def test_group_queue_survives_its_last_member(bus: InMemoryBus) -> None:
    """Messages queued for a group wait for a later member; new publishes do not queue."""
    gate = asyncio.Event()
    started = asyncio.Event()
    first_seen: list[int] = []
    later_seen: list[int] = []

    async def blocked(delivery: Delivery) -> None:
        started.set()
        await gate.wait()
        first_seen.append(delivery.message.payload["n"])

    async def later(delivery: Delivery) -> None:
        later_seen.append(delivery.message.payload["n"])

    sub = await bus.subscribe(blocked, recipient="w", group="g")
    for n in range(3):
        await bus.publish(_msg(to="w", n=n))
    await asyncio.wait_for(started.wait(), WAIT)
    leaving = asyncio.create_task(sub.unsubscribe())
    await asyncio.sleep(0.02)
    assert not leaving.done(), "unsubscribe returned before the in-flight delivery finished"
    gate.set()
    await asyncio.wait_for(leaving, WAIT)
    assert first_seen == [0]
    with pytest.raises(NoSubscriberError):
        await bus.publish(_msg(to="w", n=99))
    assert bus.undeliverable == 1
    await bus.subscribe(later, recipient="w", group="g")
    await _until(lambda: later_seen == [1, 2])


async def test_anonymous_leftovers_are_dead_lettered_on_unsubscribe(bus: InMemoryBus) -> None:
    """A subscription without a group cannot be rejoined, so its queued messages dead-letter."""
    gate = asyncio.Event()
    started = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        started.set()
        await gate.wait()

    sub = await bus.subscribe(handle, recipient="w")
    for n in range(3):
        await bus.publish(_msg(to="w", n=n))
    await asyncio.wait_for(started.wait(), WAIT)
    leaving = asyncio.create_task(sub.unsubscribe())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(leaving, WAIT)
    letters = await bus.dead_letters()
    assert [d.message.payload["n"] for d in letters] == [1, 2]
    assert all("cancelled before delivery" in d.cause for d in letters)
    assert bus.outstanding == 0


async def test_unsubscribe_from_own_handler_does_not_deadlock(bus: InMemoryBus) -> None:
    """A handler may unsubscribe its own subscription."""
    handled: list[int] = []
    subs: list[Subscription] = []

    async def handle(delivery: Delivery) -> None:
        handled.append(delivery.message.payload["n"])
        await asyncio.wait_for(subs[0].unsubscribe(), WAIT)

    subs.append(await bus.subscribe(handle, types="task.*", group="g"))
    await bus.publish(_msg(n=1))
    await _until(lambda: handled == [1])
    await _until(lambda: bus.outstanding == 0)
    with pytest.raises(NoSubscriberError):  # nobody is left to receive it
        await bus.publish(_msg(n=2))
    await asyncio.sleep(0.02)
    assert handled == [1]


# -- request / reply ---------------------------------------------------------------------------


async def test_reply_is_also_routed_normally(bus: InMemoryBus) -> None:
    """A reply resolves the request and still reaches subscribers of its address."""
    inbox: list[str] = []

    async def service(delivery: Delivery) -> None:
        await bus.publish(delivery.message.reply("svc.result", sender="svc"))

    async def client_inbox(delivery: Delivery) -> None:
        inbox.append(delivery.message.id)

    await bus.subscribe(service, recipient="svc")
    await bus.subscribe(client_inbox, recipient="client")
    question = Message(type="svc.ask", sender="client", to="svc")
    reply = await bus.request(question, timeout=WAIT)
    await _until(lambda: inbox == [reply.id])
    assert bus.undeliverable == 0


async def test_reply_answering_a_request_is_not_undeliverable(bus: InMemoryBus) -> None:
    """A reply nobody subscribes to, but that answers a request, is not counted lost."""

    async def service(delivery: Delivery) -> None:
        await bus.publish(delivery.message.reply("svc.result", sender="svc"))

    await bus.subscribe(service, recipient="svc")
    await bus.request(_msg("svc.ask", to="svc"), timeout=WAIT)
    assert bus.undeliverable == 0


async def _silent(delivery: Delivery) -> None:
    """A subscriber that receives requests and never answers them."""


async def test_request_to_nobody_fails_fast(bus: InMemoryBus) -> None:
    """A request no subscription would receive raises at once instead of timing out."""
    with pytest.raises(NoSubscriberError):
        await bus.request(_msg("svc.ask", to="nobody"), timeout=WAIT)
    with pytest.raises(NoSubscriberError):  # and leaves no pending entry behind
        await bus.request(_msg("svc.ask", to="nobody"), timeout=WAIT)


async def test_request_timeout_names_message_and_cleans_up(bus: InMemoryBus) -> None:
    """The timeout error names id, type and timeout; the same id can then be requested again."""
    await bus.subscribe(_silent, recipient="quiet")
    question = _msg("svc.ask", to="quiet")
    with pytest.raises(RequestTimeoutError) as caught:
        await bus.request(question, timeout=0.05)
    assert question.id in str(caught.value)
    assert "svc.ask" in str(caught.value)
    assert "0.05s" in str(caught.value)
    with pytest.raises(RequestTimeoutError):
        await bus.request(question, timeout=0.01)


async def test_duplicate_waiting_request_is_refused(bus: InMemoryBus) -> None:
    """Two requests waiting on the same message id would steal each other's reply."""
    await bus.subscribe(_silent, recipient="quiet")
    question = _msg("svc.ask", to="quiet")
    first = asyncio.create_task(bus.request(question, timeout=WAIT))
    await asyncio.sleep(0)
    try:
        with pytest.raises(ValueError, match="already waiting"):
            await bus.request(question, timeout=WAIT)
    finally:
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first


async def test_request_after_close_raises_and_cleans_up(bus: InMemoryBus) -> None:
    """A request on a closed bus raises ``BusClosedError`` and leaves nothing pending."""
    await bus.close()
    question = _msg("svc.ask", to="svc")
    for _ in range(2):  # a leaked pending entry would turn the second into ValueError
        with pytest.raises(BusClosedError):
            await bus.request(question, timeout=WAIT)


async def test_close_fails_waiting_requests(bus: InMemoryBus) -> None:
    """A request still waiting when the bus closes fails with ``BusClosedError``."""
    await bus.subscribe(_silent, recipient="quiet")
    waiting = asyncio.create_task(bus.request(_msg("svc.ask", to="quiet"), timeout=WAIT))
    await asyncio.sleep(0)
    await bus.close()
    with pytest.raises(BusClosedError, match="awaited a reply"):
        await asyncio.wait_for(waiting, WAIT)


# -- close -------------------------------------------------------------------------------------


async def test_drain_timeout_abandons_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    """When the drain times out, close stops anyway and reports how many were abandoned."""
    bus = InMemoryBus()
    never = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(delivery: Delivery) -> None:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await bus.subscribe(stuck, recipient="worker")
    for n in range(3):
        await bus.publish(_msg(n=n))
    caplog.set_level(logging.WARNING, logger="govbus.bus")
    await asyncio.wait_for(bus.close(drain_timeout=0.1), WAIT)
    assert bus.abandoned == 3
    assert cancelled.is_set()
    assert "3 message(s) abandoned" in caplog.text


async def test_close_delivers_long_redelivery_early() -> None:
    """A redelivery due after the drain window is delivered early rather than lost."""
    bus = InMemoryBus()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            await delivery.nack(delay=60.0)

    await bus.subscribe(handle, recipient="worker")
    await bus.publish(_msg())
    await _until(lambda: attempts == [1])
    # Waiting out the backoff, or the drain window, would overrun this wait_for.
    await asyncio.wait_for(bus.close(drain_timeout=30.0), 2.0)
    assert attempts == [1, 2]
    assert bus.abandoned == 0


async def test_close_dead_letters_messages_of_memberless_groups() -> None:
    """On close, messages kept for an absent group member dead-letter instead of stalling."""
    bus = InMemoryBus()
    gate = asyncio.Event()
    started = asyncio.Event()

    async def handle(delivery: Delivery) -> None:
        started.set()
        await gate.wait()

    sub = await bus.subscribe(handle, recipient="w", group="g")
    for n in range(3):
        await bus.publish(_msg(to="w", n=n))
    await asyncio.wait_for(started.wait(), WAIT)
    leaving = asyncio.create_task(sub.unsubscribe())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(leaving, WAIT)
    assert bus.outstanding == 2
    await asyncio.wait_for(bus.close(drain_timeout=5.0), 1.0)
    letters = await bus.dead_letters()
    assert [d.message.payload["n"] for d in letters] == [1, 2]
    assert all("no subscriber" in d.cause for d in letters)
    assert bus.abandoned == 0


async def test_publish_during_drain_is_delivered(bus: InMemoryBus) -> None:
    """A handler in flight while the bus drains may still publish, and that message is
    delivered before close returns: nothing a handler sends is lost to shutdown."""
    started = asyncio.Event()
    gate = asyncio.Event()
    relayed: list[int] = []

    async def handle(delivery: Delivery) -> None:
        started.set()
        await gate.wait()
        await bus.publish(_msg(to="elsewhere"))

    async def downstream(delivery: Delivery) -> None:
        relayed.append(delivery.message.payload["n"])

    await bus.subscribe(handle, recipient="worker")
    await bus.subscribe(downstream, recipient="elsewhere")
    await bus.publish(_msg())
    await asyncio.wait_for(started.wait(), WAIT)
    closer = asyncio.create_task(bus.close())
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(closer, WAIT)
    assert len(relayed) == 1
    with pytest.raises(BusClosedError):
        await bus.publish(_msg())


async def test_handler_awaiting_close_is_not_cancelled(bus: InMemoryBus) -> None:
    """A handler that awaits ``close`` returns after the drain timeout instead of being
    cancelled by it or waiting forever for its own delivery."""
    steps: list[str] = []

    async def handle(delivery: Delivery) -> None:
        # Through wait_for, so close() runs in a task of its own, not in the worker.
        await asyncio.wait_for(bus.close(drain_timeout=0.05), WAIT)
        steps.append("after close")

    await bus.subscribe(handle, recipient="worker")
    await bus.publish(_msg())
    await _until(lambda: steps == ["after close"])
    assert bus.closing


async def test_concurrent_close_calls_both_return(bus: InMemoryBus) -> None:
    """Two overlapping close calls both finish; the bus ends closed."""
    await bus.subscribe(lambda d: asyncio.sleep(0.01), recipient="worker")
    for n in range(5):
        await bus.publish(_msg(n=n))
    await asyncio.wait_for(asyncio.gather(bus.close(), bus.close()), WAIT)
    assert bus.outstanding == 0
    assert bus.closing


async def test_closed_bus_refuses_start_and_subscribe(bus: InMemoryBus) -> None:
    """An in-memory bus does not restart after close."""

    async def handle(delivery: Delivery) -> None:
        return None

    await bus.start()
    await bus.start()
    await bus.close()
    with pytest.raises(BusClosedError):
        await bus.start()
    with pytest.raises(BusClosedError):
        await bus.subscribe(handle, recipient="worker")


async def test_async_with_drains_on_exit() -> None:
    """``async with`` starts the bus and closes it with a drain on exit."""
    handled: list[int] = []

    async def handle(delivery: Delivery) -> None:
        await asyncio.sleep(0.001)
        handled.append(delivery.message.payload["n"])

    async with InMemoryBus() as bus:
        await bus.subscribe(handle, recipient="worker")
        for n in range(20):
            await bus.publish(_msg(n=n))
    assert handled == list(range(20))
    with pytest.raises(BusClosedError):
        await bus.publish(_msg())
