"""The fault-injection layer: wrappers that put a fault between govbus and a real part.

Each wrapper is the part it wraps, from the outside (an :class:`~govbus.registry.Agent`, a
:class:`~govbus.models.ChatModel`, an :class:`~govbus.audit.AuditStore`, a
:class:`~govbus.bus.Bus`), so faults enter through the app's own seams and nothing is
monkeypatched:

============================  ==========================================  ====================
wrapper                       installed with                              fault kinds
============================  ==========================================  ====================
:class:`FaultyAgent`          ``App.wrap_agent(name, ...)``               agent_timeout,
                                                                          agent_exception,
                                                                          agent_slow,
                                                                          circuit_open,
                                                                          poison_message
:class:`FaultyModel`          ``App.wrap_model(name, ...)``               llm_error,
                                                                          llm_timeout
:class:`FaultyAuditStore`     ``App(audit=FaultyAuditStore(store, ...))``  audit_down
:class:`DuplicatingBus`       ``App(bus=DuplicatingBus(bus, ...))``       duplicate_delivery
:class:`BrokerRestarts`       the drill's private ``nats-server``         bus_restart
                              (:mod:`govbus.drills.broker`)
============================  ==========================================  ====================

``budget_exhausted`` needs no wrapper: the runner gives the agent a budget of ``limit``
deliveries. ``bus_restart`` is no wrapper either: the broker itself goes away, and the app's
real :class:`~govbus.bus.nats.NatsBus` has to live through it. A :class:`Trigger` decides
which calls a fault hits, deterministically; every hit is counted in :attr:`Trigger.hits`, so
a drill whose fault never fired is reported as such.

Example:
    >>> import asyncio
    >>> from govbus.drills.spec import Fault
    >>> from govbus.models import ChatRequest, ModelUnavailableError, ScriptedModel
    >>> model = FaultyModel(ScriptedModel(), Trigger(Fault(kind="llm_error", first=1)))
    >>> try:
    ...     asyncio.run(model.complete(ChatRequest.of("hi")))
    ... except ModelUnavailableError as exc:
    ...     print(exc.code)
    model_unavailable
    >>> asyncio.run(model.complete(ChatRequest.of("hi"))).content
    'OK'
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from govbus.audit import AuditEvent, AuditRecord, AuditStore, VerifyReport
from govbus.bus import Bus, DeadLetter, DeliveryHandler, Subscription
from govbus.drills.broker import NatsServer
from govbus.drills.spec import Fault
from govbus.envelope import REPLY_TO, Message, TypePattern
from govbus.errors import AgentFailedError, AuditUnavailableError, DrillError
from govbus.models import (
    ChatModel,
    ChatRequest,
    ChatResponse,
    ModelRateLimitedError,
    ModelRejectedError,
    ModelUnavailableError,
)
from govbus.registry import Agent, AgentCard, Context, HandlerResult

#: Long enough to outlast any timeout; the wrapper is cancelled long before.
_FOREVER = 24 * 3600.0


class InjectedFault(AgentFailedError):
    """What a faulty agent raises. ``retryable`` is set per fault (poison that may pass on a
    redelivery, or not)."""

    code = "exception"

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Trigger:
    """Decides, call by call, whether ``fault`` hits: skip ``after`` eligible calls, then hit up
    to ``first`` of them, each with probability ``rate`` from a generator seeded by ``seed``.

    Attributes:
        calls: eligible calls seen.
        hits: calls the fault hit.
    """

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.calls = 0
        self.hits = 0
        self._random = random.Random(fault.seed)

    def fire(self) -> bool:
        self.calls += 1
        fault = self.fault
        if self.calls <= fault.after:
            return False
        if fault.first is not None and self.hits >= fault.first:
            return False
        if fault.rate < 1.0 and self._random.random() >= fault.rate:
            return False
        self.hits += 1
        return True


def _matches(payload: dict[str, Any], match: dict[str, Any] | None) -> bool:
    return match is None or all(payload.get(k) == v for k, v in match.items())


class FaultyAgent(Agent):
    """An agent whose calls the given triggers may hang, fail or slow down.

    ``card`` replaces the wrapped agent's card (same name) when given: the runner uses it for
    drill settings (``max_attempts``, ``timeout``) and to switch a mechanism off. ``entered``
    counts every call, faulted or not (``delivered_exactly``).
    """

    def __init__(
        self, agent: Agent, triggers: list[Trigger], *, card: AgentCard | None = None
    ) -> None:
        self.inner = agent
        self.card = card or agent.card  # type: ignore[misc]  # instance-level card
        self.triggers = triggers
        self.entered = 0

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        self.entered += 1
        for trigger in self.triggers:
            kind = trigger.fault.kind
            if kind == "poison_message" and not _matches(message.payload, trigger.fault.match):
                continue
            if not trigger.fire():
                continue
            if kind == "agent_timeout":
                await asyncio.sleep(_FOREVER)  # the hop's watchdog cancels it
            elif kind == "agent_slow":
                await asyncio.sleep((trigger.fault.delay_ms or 0.0) / 1000)
            else:  # agent_exception, circuit_open, poison_message
                raise InjectedFault(
                    f"injected {kind} in agent {self.card.name!r}",
                    retryable=trigger.fault.retryable,
                )
        return await self.inner.handle(message, ctx)


class SharedPool(Agent):
    """Bulkheads switched off: every wrapped agent takes a slot from one shared pool, as in a
    system with one worker pool for all agents. (The can-fail test of the ``bulkhead`` drill.)
    """

    def __init__(self, agent: Agent, pool: asyncio.Semaphore) -> None:
        self.inner = agent
        self.card = agent.card  # type: ignore[misc]
        self._pool = pool

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        async with self._pool:
            return await self.inner.handle(message, ctx)


class FaultyModel:
    """A model provider that fails (``llm_error``) or hangs (``llm_timeout``) when triggered."""

    def __init__(self, model: ChatModel, trigger: Trigger) -> None:
        self.inner = model
        self.name = model.name
        self.trigger = trigger

    async def complete(self, request: ChatRequest) -> ChatResponse:
        fault = self.trigger.fault
        if self.trigger.fire():
            if fault.kind == "llm_timeout":
                await asyncio.sleep((fault.delay_ms or _FOREVER * 1000) / 1000)
            else:
                text = f"{self.name}: injected llm_error ({fault.error})"
                if fault.error == "rate_limited":
                    raise ModelRateLimitedError(text)
                if fault.error == "rejected":
                    raise ModelRejectedError(text)
                raise ModelUnavailableError(text)
        return await self.inner.complete(request)


class FaultyAuditStore:
    """An audit store that is down (raises :class:`AuditUnavailableError`) for the events its
    trigger hits: with ``after: 5, first: 40`` the database goes away after five events and
    comes back forty refused events later."""

    def __init__(self, inner: AuditStore, trigger: Trigger) -> None:
        self.inner = inner
        self.trigger = trigger
        self.refused = 0

    @property
    def node(self) -> str:
        return self.inner.node

    async def start(self) -> None:
        await self.inner.start()

    def _check(self) -> None:
        if self.trigger.fire():
            self.refused += 1
            raise AuditUnavailableError("injected audit_down: the audit database is unreachable")

    def submit(self, event: AuditEvent) -> None:
        self._check()
        self.inner.submit(event)

    async def write(self, event: AuditEvent) -> None:
        self._check()
        await self.inner.write(event)

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()

    def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        return self.inner.records(node=node)

    async def verify(self) -> VerifyReport:
        return await self.inner.verify()


class DuplicatingBus:
    """A bus that delivers matching messages twice (same message id), as an at-least-once
    broker does after a lost ack: ``duplicate_delivery``. Replies to requesters' inboxes are
    never duplicated (they are not agent work)."""

    def __init__(self, inner: Bus, trigger: Trigger) -> None:
        self.inner = inner
        self.trigger = trigger
        self._types = TypePattern(tuple(trigger.fault.types or ["*"]))
        self.supports_request = inner.supports_request
        self.supports_dead_letters = inner.supports_dead_letters

    @property
    def dead_letter_store(self) -> Any:
        return self.inner.dead_letter_store

    async def start(self) -> None:
        await self.inner.start()

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        await self.inner.close(drain_timeout=drain_timeout)

    async def publish(self, message: Message, *, address: str | None = None) -> None:
        await self.inner.publish(message, address=address)
        target = address or message.to
        is_inbox = target is not None and target == message.metadata.get(REPLY_TO)
        if (
            not is_inbox
            and not (target or "").startswith("_inbox.")
            and self._types.matches(message.type)
            and self.trigger.fire()
        ):
            await self.inner.publish(message, address=address)

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
        return await self.inner.subscribe(
            handler,
            recipient=recipient,
            types=types,
            group=group,
            concurrency=concurrency,
            max_attempts=max_attempts,
        )

    async def request(
        self, message: Message, *, timeout: float, address: str | None = None
    ) -> Message:
        return await self.inner.request(message, timeout=timeout, address=address)

    async def dead_letters(self) -> list[DeadLetter]:
        return await self.inner.dead_letters()


class BrokerRestarts:
    """``bus_restart``: restarts the drill's private ``nats-server`` in the middle of the run.

    The runner awaits :meth:`before_request` before each request goes out. When the trigger
    hits (and no restart is under way), the server is stopped by its process id first
    (SIGTERM, or SIGKILL with ``stop: kill``), so that this request, and every one sent until
    the server is back, is published into the outage; meanwhile requests sent earlier are in
    flight. The server stays down ``down_ms`` and starts again on the same port with the same
    JetStream store, in the background (stop and start run in a thread, so the app keeps
    working meanwhile).

    Attributes:
        restarts: one entry per restart: the requests in flight when the server had stopped,
            the requests sent while it was down, how long it was down (stop finished to
            start finished, in ms) and the process ids before and after.
    """

    def __init__(self, server: NatsServer, trigger: Trigger, in_flight: Callable[[], int]) -> None:
        self.server = server
        self.trigger = trigger
        self.restarts: list[dict[str, Any]] = []
        self._in_flight = in_flight
        self._busy = False
        self._current: dict[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        """True from the end of a stop until the start is over."""
        return self._current is not None

    async def before_request(self) -> None:
        """A request is about to go out: stop the server first if the trigger says so, and
        count the request if the server is down."""
        if not self._busy and self.trigger.fire():
            self._busy = True
            try:
                pid = self.server.pid
                stop = self.server.kill if self.trigger.fault.stop == "kill" else self.server.stop
                await asyncio.to_thread(stop)
            except BaseException:
                self._busy = False
                raise
            self._current = {
                "in_flight_at_stop": self._in_flight(),
                "sent_while_down": 0,
                "down_ms": None,
                "pids": [pid, None],
            }
            self._task = asyncio.get_running_loop().create_task(
                self._come_back(time.perf_counter()), name="govbus-drill bus_restart"
            )
        if self._current is not None:
            self._current["sent_while_down"] += 1

    async def _come_back(self, stopped: float) -> None:
        current = self._current
        assert current is not None
        try:
            await asyncio.sleep(self.trigger.fault.down_ms / 1000)
            try:
                await asyncio.to_thread(self.server.start)
            except (OSError, RuntimeError) as exc:
                raise DrillError(f"bus_restart: the nats-server did not come back: {exc}") from None
            current["down_ms"] = round((time.perf_counter() - stopped) * 1000)
            current["pids"][1] = self.server.pid
            self.restarts.append(current)
        finally:
            self._current = None
            self._busy = False

    async def wait(self) -> None:
        """Wait for the restart under way, if any (raising what it raised)."""
        if self._task is not None:
            await self._task

    async def settle(self) -> None:
        """Let a restart under way finish, whatever its result (before the server is closed,
        so that no start is left running in its thread)."""
        if self._task is not None:
            await asyncio.wait({self._task})


class ForgetfulIdempotency:
    """Idempotency switched off: remembers nothing, so every duplicate is handled again. (The
    can-fail test of the ``duplicate_delivery`` drill.)"""

    async def seen(self, key: str, *, lease: float | None = None) -> bool:
        return False

    async def done(self, key: str) -> None:
        return None

    async def forget(self, key: str) -> None:
        return None


__all__ = [
    "BrokerRestarts",
    "DuplicatingBus",
    "FaultyAgent",
    "FaultyAuditStore",
    "FaultyModel",
    "ForgetfulIdempotency",
    "InjectedFault",
    "SharedPool",
    "Trigger",
]
