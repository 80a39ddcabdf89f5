"""``NatsBus`` against a real ``nats-server``: what the conformance suite cannot show with one
bus — several bus instances (as several processes would be), de-duplication by message id, the
NATS dead-letter store, idempotency across processes, and a server restart under load.

One private server serves the module (the restart test starts its own); every bus gets its own
stream and subject prefix.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from govbus.bus.base import DeadLetter, Delivery, Route
from govbus.bus.deadletter import DeadLetterStore, MemoryDeadLetterStore
from govbus.envelope import Message, TypePattern
from govbus.errors import (
    BusUnavailableError,
    DeadLetterError,
    DeadLetterNotFoundError,
    NoSubscriberError,
)
from tests.nats_server import NatsServer, free_port, nats_server_or_skip
from tests.unit.bus.test_deadletter import MakeStore, StoreContract

pytest.importorskip("nats", reason="the nats extra (nats-py) is not installed")

import nats

from govbus.bus.nats import (
    NatsBus,
    NatsDeadLetterStore,
    NatsIdempotencyStore,
    decode_token,
    encode_token,
    filter_subject,
)

pytestmark = pytest.mark.nats

WAIT = 15.0


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    server = nats_server_or_skip()
    try:
        yield server
    finally:
        server.close()


def names() -> dict[str, str]:
    """A stream name and subject prefix no other test uses."""
    token = secrets.token_hex(4)
    return {"stream": f"I{token}", "subject_prefix": f"i{token}"}


BusFactory = Callable[..., Awaitable[NatsBus]]


@pytest.fixture
async def make_bus(nats_server: NatsServer) -> AsyncIterator[BusFactory]:
    """Started buses on one stream (as processes of one deployment); all closed afterwards."""
    shared = names()
    opened: list[NatsBus] = []

    async def make(**options: Any) -> NatsBus:
        url = options.pop("url", nats_server.url)
        settings: dict[str, Any] = {
            **shared,
            "redelivery_base": 0.02,
            "redelivery_max": 0.2,
            "publish_timeout": 5.0,
        }
        settings.update(options)
        bus = NatsBus(url, **settings)
        opened.append(bus)
        await bus.start()
        return bus

    yield make
    for bus in opened:
        await bus.close(drain_timeout=5.0)


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def task(to: str = "worker", n: int = 0, type: str = "task.do") -> Message:
    return Message(type=type, sender="test", to=to, payload={"n": n})


# -- subjects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, "", "analyzer", "my_agent", "_inbox.node-1", "Ünïcode ☃", "a.b*c>d e", "_", "_-"],
)
def test_subject_tokens_round_trip(value: str | None) -> None:
    token = encode_token(value)
    assert token and all(c.isascii() and (c.isalnum() or c in "_-") for c in token)
    assert decode_token(token) == value


def test_subject_tokens_escape_each_character_as_documented() -> None:
    """``encode_token`` escapes runs of characters at once; the result must be what escaping
    character by character gives (the documented form other processes decode)."""

    def by_character(value: str) -> str:
        plain = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
        return "".join(
            char
            if char in plain
            else "".join(f"_{b:02x}" for b in char.encode("utf-8", "surrogatepass"))
            for char in value
        )

    rng = random.Random(7)
    alphabet = "aZ09-_.: /*>\x00\x7fé€☃😀\ud800"
    for _ in range(5000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        assert encode_token(value) == by_character(value), repr(value)
        assert decode_token(encode_token(value)) == value


def subject_matches(filter: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` one or more at the end."""
    wanted, tokens = filter.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


TYPES = [
    "a", "a.b", "a.b.c", "ab", "ab.c", "b", "b.a", "portfolio", "portfolio.analyze",
    "portfolio.analyze.result", "portfolios.list", "risk.score", "risk.limit", "x-y.z_1",
]  # fmt: skip


@pytest.mark.parametrize(
    "patterns",
    [
        ["*"], ["a"], ["a.*"], ["a*"], ["a.b"], ["a?b"], ["a", "a.b"], ["a.b", "a.b.c"],
        ["portfolio.*"], ["risk.score", "risk.limit"], ["a.*", "b.a"], ["?.b"], ["a..b"],
        ["portfolio.analyze", "portfolio.*"], ["*.c"],
    ],
)  # fmt: skip
@pytest.mark.parametrize("recipient", [None, "worker"])
def test_filter_subject_covers_every_type_the_route_matches(
    patterns: list[str], recipient: str | None
) -> None:
    """A consumer's filter is a superset of its route: nothing the route wants is filtered
    out by the server (the exact route is checked on delivery)."""
    prefix = "gb.x"
    route = Route(recipient, TypePattern(patterns))
    wanted = filter_subject(prefix, route)
    assert all(token for token in wanted.split("."))
    for address in ("worker", "other", None):
        for kind in TYPES:
            message = Message(type=kind, sender="t")
            subject = f"{prefix}.m.{encode_token(address)}.{kind}"
            if route.matches(message, address):
                assert subject_matches(wanted, subject), (wanted, subject)
            if recipient is not None and address != recipient:
                assert not subject_matches(wanted, subject)


def test_exact_types_filter_exactly() -> None:
    route = Route(None, TypePattern("portfolio.analyze"))
    assert filter_subject("govbus", route) == "govbus.m.*.portfolio.analyze"
    assert filter_subject("govbus", Route("a_b", None)) == "govbus.m.a_5fb.>"


def test_lazy_export_from_the_bus_package() -> None:
    import govbus.bus

    assert govbus.bus.NatsBus is NatsBus
    assert govbus.bus.NatsIdempotencyStore is NatsIdempotencyStore
    with pytest.raises(AttributeError):
        _ = govbus.bus.NoSuchThing  # type: ignore[attr-defined]


# -- connecting ------------------------------------------------------------------------------


async def test_start_against_a_closed_port_fails_fast_naming_the_url() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    bus = NatsBus(url, connect_timeout=0.5, **names())
    began = time.monotonic()
    with pytest.raises(BusUnavailableError) as info:
        await bus.start()
    assert time.monotonic() - began < 5.0
    assert url in info.value.message
    assert info.value.retryable
    await bus.close()


async def test_a_password_in_the_url_is_not_shown(nats_server: NatsServer) -> None:
    url = f"nats://user:s3cret@127.0.0.1:{free_port()}"
    bus = NatsBus(url, connect_timeout=0.5, **names())
    with pytest.raises(BusUnavailableError) as info:
        await bus.start()
    assert "s3cret" not in info.value.message
    assert "user:***@127.0.0.1" in info.value.message
    await bus.close()


# -- publishing ------------------------------------------------------------------------------


async def test_a_republished_message_id_is_dropped_by_the_server(make_bus: BusFactory) -> None:
    bus = await make_bus()
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.message.id)

    await bus.subscribe(handle, recipient="worker")
    first, other = task(n=1), task(n=2)
    await bus.publish(first)
    await bus.publish(first)  # same id and address: a duplicate
    await bus.publish(first.model_copy(update={"attempt": 3}))  # still the same message
    await bus.publish(other)
    await eventually(lambda: other.id in seen, "the second message")
    await asyncio.sleep(0.3)
    assert seen == [first.id, other.id]
    assert bus.duplicates == 2


async def test_one_message_may_go_to_several_addresses(make_bus: BusFactory) -> None:
    """De-duplication is per (id, address): routing one message to two agents keeps both."""
    bus = await make_bus()
    seen: list[tuple[str | None, str]] = []

    async def handle(delivery: Delivery) -> None:
        seen.append((delivery.address, delivery.message.id))

    await bus.subscribe(handle, recipient="alpha")
    await bus.subscribe(handle, recipient="beta")
    message = Message(type="task.do", sender="test")
    await bus.publish(message, address="alpha")
    await bus.publish(message, address="beta")
    await eventually(lambda: len(seen) == 2, "both copies")
    assert sorted(seen) == [("alpha", message.id), ("beta", message.id)]


async def test_inbox_addresses_and_trace_headers(
    make_bus: BusFactory, nats_server: NatsServer
) -> None:
    """An ``_inbox.<node>`` address is escaped into one token and reported back exactly; the
    trace context travels in NATS headers too."""
    bus = await make_bus()
    got: list[str | None] = []

    async def handle(delivery: Delivery) -> None:
        got.append(delivery.address)

    await bus.subscribe(handle, recipient="_inbox.node-1")
    # A plain NATS subscriber sees what is published to the stream's subjects.
    nc = await nats.connect(nats_server.url)
    try:
        tap = await nc.subscribe(f"{bus.subject_prefix}.m.>")
        await nc.flush()  # the server knows the subscription before the bus publishes
        traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        message = task(to="_inbox.node-1").with_metadata(traceparent=traceparent)
        await bus.publish(message)
        raw = await tap.next_msg(timeout=WAIT)
    finally:
        await nc.close()
    await eventually(lambda: bool(got), "the inbox message")
    assert got == ["_inbox.node-1"]
    assert raw.subject == f"{bus.subject_prefix}.m._5finbox_2enode-1.task.do"
    assert raw.headers is not None
    assert raw.headers["traceparent"] == traceparent
    assert raw.headers["Nats-Msg-Id"] == f"{message.id}@_5finbox_2enode-1"
    assert Message.from_json(raw.data) == message


async def test_another_process_subscription_makes_a_message_routable(
    make_bus: BusFactory,
) -> None:
    """The publisher learns of a subscription made by another bus without waiting for its
    route cache to expire; a route nobody has is refused."""
    publisher = await make_bus(route_ttl=3600.0)
    subscriber = await make_bus()
    with pytest.raises(NoSubscriberError):
        await publisher.publish(task(to="late"))
    seen: list[str] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery.message.id)

    await subscriber.subscribe(handle, recipient="late", group="late")
    message = task(to="late")
    await publisher.publish(message)
    await eventually(lambda: seen == [message.id], "the message in the other bus")
    assert publisher.undeliverable == 1


async def test_request_answered_by_another_process(make_bus: BusFactory) -> None:
    client = await make_bus()
    server = await make_bus()

    async def service(delivery: Delivery) -> None:
        asked = delivery.message
        await server.publish(asked.reply("svc.result", {"echo": asked.payload}, sender="svc"))

    await server.subscribe(service, recipient="svc", group="svc")
    question = Message(type="svc.ask", sender="client", to="svc", payload={"q": 1})
    reply = await client.request(question, timeout=WAIT)
    assert reply.causation_id == question.id
    assert reply.payload == {"echo": {"q": 1}}


# -- competing consumers across processes ----------------------------------------------------


async def test_two_buses_in_one_group_share_the_work_once(make_bus: BusFactory) -> None:
    first, second = await make_bus(), await make_bus()
    handled: dict[str, Counter[str]] = {"first": Counter(), "second": Counter()}

    def member(label: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            handled[label][delivery.message.id] += 1
            await asyncio.sleep(0.002)  # long enough for the other member to get some work

        return handle

    await first.subscribe(member("first"), recipient="worker", group="workers", concurrency=4)
    await second.subscribe(member("second"), recipient="worker", group="workers", concurrency=4)
    publisher = await make_bus()
    sent = [task(n=i) for i in range(200)]
    for message in sent:
        await publisher.publish(message)
    await eventually(
        lambda: len(handled["first"]) + len(handled["second"]) >= len(sent), "all messages"
    )
    await asyncio.sleep(0.3)
    total = handled["first"] + handled["second"]
    assert set(total) == {m.id for m in sent}
    assert max(total.values()) == 1, "a message was handled twice"
    assert handled["first"] and handled["second"], "one member got all the work"


async def test_unsubscribe_dead_letters_what_an_ungrouped_subscription_left(
    make_bus: BusFactory,
) -> None:
    """A subscription without a group cannot be rejoined: unsubscribe lets the delivery in
    flight finish, dead-letters what its consumer still held, and later publishes to it are
    refused."""
    bus = await make_bus()
    gate, started = asyncio.Event(), asyncio.Event()
    handled: list[int] = []

    async def handle(delivery: Delivery) -> None:
        started.set()
        await asyncio.wait_for(gate.wait(), WAIT)
        handled.append(delivery.message.payload["n"])

    sub = await bus.subscribe(handle, recipient="leaving")
    for n in range(3):
        await bus.publish(task(to="leaving", n=n))
    await asyncio.wait_for(started.wait(), WAIT)
    leaving = asyncio.create_task(sub.unsubscribe())
    await asyncio.sleep(0.2)
    assert not leaving.done(), "unsubscribe returned while a delivery was in flight"
    gate.set()
    await asyncio.wait_for(leaving, WAIT)
    assert handled == [0]
    letters = await bus.dead_letters()
    assert sorted(letter.message.payload["n"] for letter in letters) == [1, 2]
    assert all("cancelled before delivery" in letter.cause for letter in letters)
    with pytest.raises(NoSubscriberError):
        await bus.publish(task(to="leaving"))


# -- dead letters ----------------------------------------------------------------------------


async def test_a_message_that_always_fails_ends_in_the_nats_dead_letter_store(
    make_bus: BusFactory, nats_server: NatsServer
) -> None:
    bus = await make_bus()
    attempts: list[int] = []

    async def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise ConnectionError("downstream refused")

    await bus.subscribe(handle, recipient="doomed", group="doomed", max_attempts=3)
    message = task(to="doomed")
    await bus.publish(message)
    await eventually(lambda: len(attempts) >= 3, "three attempts")
    store = bus.dead_letter_store
    assert isinstance(store, NatsDeadLetterStore)

    letters: list[Any] = []

    async def poll() -> None:
        nonlocal letters
        while not letters:
            letters = await bus.dead_letters()
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), WAIT)
    [letter] = letters
    assert (letter.message.id, letter.attempts, letter.address) == (message.id, 3, "doomed")
    assert letter.subscription.startswith("doomed#")
    assert "ConnectionError" in letter.cause and "downstream refused" in letter.cause
    assert letter.message.attempt == 3
    await asyncio.sleep(0.3)
    assert attempts == [1, 2, 3]

    # Another process (here: a store with its own connection) sees and removes it.
    other = NatsDeadLetterStore(
        nats_server.url, stream=store.stream, subject_prefix=store.subject_prefix
    )
    try:
        assert (await other.get(letter.id[:8])).message.id == message.id
        assert (await other.remove(letter.id)).id == letter.id
        assert await store.count() == 0
        with pytest.raises(DeadLetterNotFoundError):
            await store.get(letter.id)
    finally:
        await other.close()


async def test_a_delivery_never_settled_on_its_last_attempt_is_dead_lettered(
    make_bus: BusFactory,
) -> None:
    """A handler that outlives ``ack_wait`` (as if its process died): the message is handed to
    a handler again, twice past ``max_attempts`` (a killed worker's work moves on), and the
    delivery after that dead-letters it without calling the handler."""
    bus = await make_bus(ack_wait=0.5)
    calls: list[int] = []
    release = asyncio.Event()

    async def stuck(delivery: Delivery) -> None:
        calls.append(delivery.attempt)
        await release.wait()

    # Held messages are kept alive while they wait: stop that for this test only.
    sub = await bus.subscribe(stuck, recipient="stuck", max_attempts=1, concurrency=4)
    ticker = sub._ticker  # type: ignore[attr-defined]
    ticker.cancel()
    await bus.publish(task(to="stuck"))
    letters: list[Any] = []

    async def poll() -> None:
        nonlocal letters
        while not letters:
            letters = await bus.dead_letters()
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), WAIT)
    finally:
        release.set()
    assert calls == [1, 2, 3]
    assert letters[0].attempts == 3
    assert "never settled" in letters[0].cause


class _FlakyStore(MemoryDeadLetterStore):
    """A dead-letter store whose first write fails."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    async def put(self, letter: DeadLetter) -> None:
        if self.failures == 0:
            self.failures += 1
            raise DeadLetterError("the store is down")
        await super().put(letter)


async def test_a_failed_dead_letter_write_is_retried_with_its_cause(
    make_bus: BusFactory,
) -> None:
    """The message stays in the work stream until its dead letter is written; the retry keeps
    the original cause and does not call the handler again."""
    store = _FlakyStore()
    bus = await make_bus(dead_letters=store)
    calls: list[int] = []

    async def strict(delivery: Delivery) -> None:
        calls.append(delivery.attempt)
        await delivery.term("payload can never be valid")

    await bus.subscribe(strict, recipient="strict", max_attempts=5)
    message = task(to="strict")
    await bus.publish(message)
    await eventually(lambda: store.total == 1, "the dead letter")
    [letter] = await bus.dead_letters()
    assert (letter.message.id, letter.attempts) == (message.id, 1)
    assert letter.cause == "payload can never be valid"
    assert calls == [1]
    assert store.failures == 1
    assert bus.dead_letter_failures == 1
    assert bus.dead_letter_store is store


class TestNatsDeadLetterStore(StoreContract):
    """The dead-letter store contract, against a store with its own connection."""

    @pytest.fixture
    def make_store(self, nats_server: NatsServer) -> MakeStore:
        token = secrets.token_hex(4)

        def make() -> DeadLetterStore:
            return NatsDeadLetterStore(
                nats_server.url, stream=f"D{token}", subject_prefix=f"d{token}"
            )

        return make

    async def test_where_names_the_server_and_stream(self, store: DeadLetterStore) -> None:
        assert isinstance(store, NatsDeadLetterStore)
        assert store.where.endswith(f"stream {store.stream}")
        assert "nats://127.0.0.1:" in store.where


# -- idempotency -----------------------------------------------------------------------------


async def test_idempotency_store_is_shared_by_two_buses(make_bus: BusFactory) -> None:
    first, second = await make_bus(), await make_bus()
    bucket = f"idem_{secrets.token_hex(4)}"
    one = NatsIdempotencyStore(first, bucket=bucket, ttl=60)
    two = NatsIdempotencyStore(second, bucket=bucket, ttl=60)
    key = "analyzer:019a8f2e-5b1c-7a00-8f3e-2d1c0b9a8f7e"
    assert await one.seen(key) is False
    assert await two.seen(key) is True
    assert await one.seen(key) is True
    await two.forget(key)
    await two.forget("never-seen")  # no error
    assert await one.seen(key) is False
    assert await two.seen(key) is True
    # Of many concurrent first sightings, in two processes, exactly one wins.
    results = await asyncio.gather(
        *(store.seen("race:1") for store in [one, two] * 10), return_exceptions=False
    )
    assert sorted(results) == [False] + [True] * 19


async def test_a_claim_left_by_a_dead_process_is_taken_over(make_bus: BusFactory) -> None:
    """A worker claims a message and dies (no done, no forget): once its lease lapses, the
    redelivery in another process is handled; a key marked done stays a duplicate."""
    first, second = await make_bus(), await make_bus()
    bucket = f"idem_{secrets.token_hex(4)}"
    dead = NatsIdempotencyStore(first, bucket=bucket, ttl=60)
    alive = NatsIdempotencyStore(second, bucket=bucket, ttl=60)
    assert await dead.seen("advisor:m-1", lease=0.3) is False
    assert await alive.seen("advisor:m-1", lease=0.3) is True  # still being handled
    await asyncio.sleep(0.4)
    assert await alive.seen("advisor:m-1", lease=5.0) is False  # the lapsed claim is taken over
    await alive.done("advisor:m-1")
    await asyncio.sleep(0.1)
    assert await dead.seen("advisor:m-1", lease=0.01) is True  # handled: a duplicate now
    # Two processes racing for one lapsed claim: exactly one wins.
    assert await dead.seen("advisor:m-2", lease=0.1) is False
    await asyncio.sleep(0.2)
    results = await asyncio.gather(*(s.seen("advisor:m-2", lease=5.0) for s in [dead, alive] * 5))
    assert results.count(False) == 1


async def test_idempotency_store_accepts_any_key(make_bus: BusFactory) -> None:
    bus = await make_bus()
    store = NatsIdempotencyStore(bus, bucket=f"idem_{secrets.token_hex(4)}", ttl=60)
    for key in ["", "a.b", "x y", "*>", "ü", "a" * 300]:
        assert await store.seen(key) is False, key
        assert await store.seen(key) is True, key


async def test_a_claim_whose_answer_was_lost_is_ours_on_the_retry(make_bus: BusFactory) -> None:
    """A claim that reached the server but whose answer was lost (a restart) is retried; the
    retry must see the record as its own (False: handle the message), not as another
    process's claim (True would drop the message as a duplicate)."""
    bus = await make_bus()
    store = NatsIdempotencyStore(bus, bucket=f"idem_{secrets.token_hex(4)}", ttl=60)
    mine, theirs = (
        b"claim:%.3f:mine-1" % (time.time() + 30),
        b"claim:%.3f:theirs-1" % (time.time() + 30),
    )
    # The first attempt, whose answer the caller never saw, and its retry:
    assert await store._seen_once("k1", mine, True, False) is False
    assert await store._seen_once("k1", mine, True, True) is False
    # Another call's claim is still somebody else's, retry or not.
    assert await store._seen_once("k1", theirs, True, True) is True
    assert await store._seen_once("k1", theirs, True, False) is True
    # The same for plain marks (no lease).
    assert await store._seen_once("k2", b"seen:mine-2", False, False) is False
    assert await store._seen_once("k2", b"seen:mine-2", False, True) is False
    assert await store._seen_once("k2", b"seen:theirs-2", False, True) is True
    # And through the public method, each call is its own claim.
    assert await store.seen("k3", lease=30) is False
    assert await store.seen("k3", lease=30) is True


async def test_idempotency_calls_ride_out_a_server_restart(tmp_path: Any) -> None:
    """Claims, done marks and forgets made while the server restarts wait for it (up to the
    bus's ``publish_timeout``) instead of failing the delivery: a failed claim would
    dead-letter a message that was never handled."""
    server = nats_server_or_skip(tmp_path)
    bus = NatsBus(server.url, publish_timeout=15.0, **names())
    store = NatsIdempotencyStore(bus, bucket=f"idem_{secrets.token_hex(4)}", ttl=60)
    try:
        await bus.start()
        assert await store.seen("before", lease=30) is False
        # Down longer than one attempt (2 s): a single try, as before, would fail.
        restart = asyncio.ensure_future(asyncio.to_thread(server.restart, down_for=2.5))
        await eventually(lambda: not bus.connected, "the disconnection", 10.0)
        during = await asyncio.gather(
            store.seen("during", lease=30),
            store.seen("before", lease=30),
            store.done("before"),
            store.forget("never-seen"),
        )
        await restart
        assert during[:2] == [False, True]
        assert await store.seen("during", lease=30) is True
        assert await store.seen("before") is True
    finally:
        await bus.close(drain_timeout=1.0)
        server.close()


async def test_requests_time_out_or_say_no_responders(make_bus: BusFactory) -> None:
    """The bus's own request path: an answer that never comes is a ``TimeoutError`` after the
    timeout (one shared timer slot late at most); nobody listening is ``NoRespondersError``."""
    bus = await make_bus()
    replies = bus._replies
    assert replies is not None
    nc = bus._client()
    silent = await nc.subscribe("govbus-test.silent")  # receives, never answers
    try:
        began = time.monotonic()
        with pytest.raises(nats.errors.TimeoutError):
            await replies.request("govbus-test.silent", b"", 0.2)
        assert 0.15 < time.monotonic() - began < 1.0
        with pytest.raises(nats.errors.NoRespondersError):
            await replies.request("govbus-test.nobody", b"", 2.0)
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await replies.publish("govbus-test.nobody", b"", 2.0)
        assert not replies._waiting  # nothing left behind
    finally:
        await silent.unsubscribe()


# -- outages --------------------------------------------------------------------------------


async def test_publish_during_an_outage_raises_and_close_still_finishes(tmp_path: Any) -> None:
    """With the server gone, a publish raises ``BusUnavailableError`` naming the server once
    ``publish_timeout`` has passed (never a silent loss), and ``close()`` still returns."""
    server = nats_server_or_skip(tmp_path)
    bus = NatsBus(server.url, publish_timeout=0.5, **names())
    try:
        await bus.start()
        seen: list[str] = []

        async def handle(delivery: Delivery) -> None:
            seen.append(delivery.message.id)

        await bus.subscribe(handle, recipient="worker", group="workers")
        await bus.publish(task())
        await eventually(lambda: len(seen) == 1, "the first message")
        server.stop()
        began = time.monotonic()
        with pytest.raises(BusUnavailableError) as info:
            await bus.publish(task())
        assert 0.4 < time.monotonic() - began < 5.0
        assert server.url in info.value.message
        began = time.monotonic()
        await bus.close(drain_timeout=1.0)
        assert time.monotonic() - began < 10.0
    finally:
        await bus.close(drain_timeout=1.0)
        server.close()


# -- a server restart under load -------------------------------------------------------------


async def test_server_restart_while_publishing_loses_nothing(tmp_path: Any) -> None:
    """Restart the server in the middle of 500 publishes: every message is either delivered
    exactly once or its publish raised ``BusUnavailableError`` (none, with this timeout)."""
    server = nats_server_or_skip(tmp_path)
    shared = names()
    publisher = NatsBus(server.url, publish_timeout=20.0, **shared)
    consumer = NatsBus(server.url, ack_wait=2.0, **shared)
    delivered: Counter[str] = Counter()
    try:
        await consumer.start()
        await publisher.start()

        async def handle(delivery: Delivery) -> None:
            delivered[delivery.message.id] += 1

        await consumer.subscribe(handle, recipient="worker", group="workers", concurrency=8)
        sent: list[str] = []
        failed: list[str] = []
        old_pid = server.pid
        restarter: asyncio.Future[None] | None = None
        published_during_restart = 0
        for i in range(500):
            if i == 150:  # in the middle: the restart runs while publishing goes on
                restarter = asyncio.ensure_future(asyncio.to_thread(server.restart))
            message = task(n=i)
            try:
                await publisher.publish(message)
                sent.append(message.id)
            except BusUnavailableError:
                failed.append(message.id)
            if restarter is not None and not restarter.done():
                published_during_restart += 1
            if i % 10 == 0:
                await asyncio.sleep(0.002)
        assert restarter is not None
        await restarter
        assert server.pid != old_pid
        assert published_during_restart > 0, "the restart did not overlap the publishing"
        await eventually(lambda: len(delivered) >= len(sent), "every published message", 30.0)
        await asyncio.sleep(0.5)
        assert failed == []
        assert set(delivered) == set(sent)
        duplicates = {k: v for k, v in delivered.items() if v != 1}
        assert duplicates == {}, f"{len(duplicates)} message(s) delivered more than once"
    finally:
        await publisher.close(drain_timeout=5.0)
        await consumer.close(drain_timeout=5.0)
        server.close()
