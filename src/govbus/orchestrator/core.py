"""The dispatch path, in the fixed order of the specification:

1. ingress (validate, verify signature)   2. resolve recipients   3. policy per recipient
4. deny -> audit, count, answer ``govbus.denied``   5. allow -> audit, publish
6. delivery under timeout/deadline         7. failure -> fallback or ``govbus.failed``
8. outputs go through 1-7 again (egress is governed).

Replies to a waiting requester travel to the requester's *inbox address* (``metadata.reply_to``),
so ``request``/``gather`` work the same in one process or across many.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

from govbus.audit import AuditEvent, AuditStore, Durability
from govbus.bus import Bus, Delivery, Subscription
from govbus.envelope import (
    DEGRADED,
    FALLBACK_CAUSE,
    FALLBACK_OF,
    POLICY_SHA256,
    REPLY_TO,
    TRACEPARENT,
    HmacSigner,
    Message,
)
from govbus.errors import (
    AgentFailedError,
    AgentTimeoutError,
    BusClosedError,
    BusError,
    EnvelopeError,
    GovbusError,
    NoRouteError,
)
from govbus.policy import Allow, CheckInput, Evaluation, MessageScan, Policy
from govbus.policy.obligations import redact_personal_data
from govbus.policy.pii import PiiDetector
from govbus.registry import Agent, AgentCard, AgentRegistry, HandlerResult
from govbus.resilience import (
    HOP_DEADLINE,
    BreakerState,
    Budget,
    CircuitBreaker,
    IdempotencyStore,
    KillSwitch,
    KillSwitchEvent,
    MemoryIdempotencyStore,
    Watchdog,
    hop_budget,
)
from govbus.telemetry import Metrics, Tracing
from govbus.telemetry.logs import CURRENT_MESSAGE
from govbus.telemetry.tracing import DECIDING_CHECK, DECISION, OUTCOME, RECIPIENTS, fail

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span

log = logging.getLogger("govbus.orchestrator")

#: Builds a NamedTuple from a full tuple of field values without its generated Python
#: ``__new__`` (a measurable cost when several are built per hop).
_new_tuple = tuple.__new__
_NO_ATTRS: Final[Mapping[str, Any]] = MappingProxyType({})
_NO_SPAN: Final = contextlib.nullcontext()
#: Delivery outcomes that are not a failure of the agent (the span is not marked failed).
_QUIET_OUTCOMES: Final = frozenset({"ok", "duplicate", "agent_paused"})

SYSTEM_SENDER: Final = "govbus"
#: Seconds a delivery's idempotency claim outlives the agent's timeout.
_CLAIM_GRACE: Final = 5.0
DENIED: Final = "govbus.denied"
FAILED: Final = "govbus.failed"
#: Metadata key on a degraded result assembled without some stage: ``"<agent>:<code>"``.
PARTIAL: Final = "partial"
#: Metadata keys that mark a result degraded (and say why); they travel along a causal chain.
DEGRADATION_KEYS: Final[tuple[str, ...]] = (DEGRADED, FALLBACK_CAUSE, FALLBACK_OF, PARTIAL)

Outcome = Literal["ok", "degraded", "denied", "failed"]
#: What decision records keep of a message: ``none`` (nothing), ``hash`` (the envelope's
#: header and the payload's sha256; the default), ``redacted`` (also the payload with personal
#: data replaced by ``[REDACTED:<entity>]``) or ``full`` (also the payload as sent).
PayloadStorage = Literal["none", "hash", "redacted", "full"]
PAYLOAD_STORAGE: Final[tuple[str, ...]] = ("none", "hash", "redacted", "full")


def outcome(reply: Message) -> Outcome:
    """How a request ended, from its answer: ``denied`` (``govbus.denied``), ``failed``
    (``govbus.failed``), ``degraded`` (marked so: a fallback or a missing part), else ``ok``."""
    if reply.type == DENIED:
        return "denied"
    if reply.type == FAILED:
        return "failed"
    return "degraded" if reply.metadata.get(DEGRADED) == "true" else "ok"


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Alert:
    """Passed to the alert hook when something an operator should know about happens."""

    kind: str  # "fallback" | "failure" | "breaker_open" | "budget_exhausted" | "dead_letter"
    agent: str
    message_id: str
    cause: str
    detail: str


AlertHook = Callable[[Alert], Awaitable[None] | None]


@dataclass(slots=True)
class AgentStats:
    """Live counters per agent (the inventory reads them)."""

    handled: int = 0
    denied: int = 0
    fallbacks: int = 0
    failures: int = 0
    last_seen: datetime | None = None


class RecipientDecision(NamedTuple):
    recipient: str
    allowed: bool
    check: str | None = None
    code: str | None = None
    reason: str | None = None


class DispatchReport(NamedTuple):
    """What happened to one dispatched message: one decision per resolved recipient."""

    message_id: str
    decisions: tuple[RecipientDecision, ...]

    @property
    def allowed(self) -> bool:
        return any(d.allowed for d in self.decisions)


@dataclass(slots=True)
class _Counters:
    by_kind: Counter[str] = field(default_factory=Counter)


class _Shape(NamedTuple):
    """What a decision record needs to know about one combination of check outcomes."""

    checks: dict[str, str]
    noteworthy: bool
    would_deny: bool


class DeliveryContext:
    """The :class:`~govbus.registry.Context` a handler receives."""

    __slots__ = ("_agent", "_budget_end", "_message", "_orch", "degradation")

    def __init__(
        self, orch: Orchestrator, message: Message, agent: AgentCard, budget_end: float
    ) -> None:
        self._orch = orch
        self._message = message
        self._agent = agent
        self._budget_end = budget_end
        #: Metadata that marks this handler's outputs degraded, because a reply it relied on
        #: came from a fallback or never came (denied, failed, timed out).
        self.degradation: dict[str, str] | None = None

    @property
    def message(self) -> Message:
        return self._message

    @property
    def agent(self) -> AgentCard:
        return self._agent

    @property
    def deadline(self) -> datetime | None:
        return self._message.deadline

    def remaining(self) -> float:
        return max(0.0, self._budget_end - time.monotonic())

    def reply(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        classification: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        return self._message.reply(
            type,
            payload,
            sender=self._agent.name,
            classification=classification,
            metadata=metadata,
        )

    def new(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        to: str | None = None,
        classification: Any = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        return self._message.caused(
            type,
            payload,
            sender=self._agent.name,
            to=to,
            classification=classification,
            metadata=metadata,
        )

    async def send(self, message: Message) -> None:
        out = self._orch.normalize_output(message, self._message, self._agent)
        await self._orch.dispatch(out, cause=self._message)

    async def request(self, message: Message, *, timeout: float | None = None) -> Message:
        out = self._orch.normalize_output(message, self._message, self._agent)
        reply = await self._orch.request(out, timeout=self._bounded(timeout), cause=self._message)
        self._note(reply)
        return reply

    async def gather(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> list[Message]:
        outs = [self._orch.normalize_output(m, self._message, self._agent) for m in messages]
        replies = await self._orch.gather(outs, timeout=self._bounded(timeout), cause=self._message)
        for reply in replies:
            self._note(reply)
        return replies

    def _note(self, reply: Message) -> None:
        found: dict[str, str]
        if reply.metadata.get(DEGRADED) == "true":
            found = {k: reply.metadata[k] for k in DEGRADATION_KEYS if k in reply.metadata}
        elif reply.type in (FAILED, DENIED):
            who = reply.payload.get("agent") or reply.payload.get("check") or "?"
            found = {DEGRADED: "true", PARTIAL: f"{who}:{reply.payload.get('code', '?')}"}
        else:
            return
        self.degradation = {**found, **(self.degradation or {})}

    def _bounded(self, timeout: float | None) -> float:
        left = self.remaining()
        return left if timeout is None else min(timeout, left)


class Orchestrator:
    """Runs the governed dispatch path over a bus, a policy, a registry and an audit store.

    Most code uses :class:`govbus.App`, which builds one of these; use it directly to wire
    your own parts.
    """

    def __init__(
        self,
        *,
        registry: AgentRegistry,
        policy: Policy,
        bus: Bus,
        audit: AuditStore,
        inbox: str,
        clock: Clock = utc_now,
        signer: HmacSigner | None = None,
        durability: Durability = "batch",
        alert: AlertHook | None = None,
        default_timeout: float = 30.0,
        breaker_threshold: int = 5,
        breaker_recovery: float = 30.0,
        idempotency: IdempotencyStore | None = None,
        budgets: Mapping[str, Budget] | None = None,
        on_budget_exhausted: Literal["fallback", "deny", "alert"] = "fallback",
        dead_letter: bool = True,
        accept_policies: Sequence[str] = (),
        tracing: Tracing | None = None,
        meter_provider: MeterProvider | None = None,
        payload_storage: PayloadStorage = "hash",
        shadow: Policy | None = None,
    ) -> None:
        if payload_storage not in PAYLOAD_STORAGE:
            raise ValueError(
                f"payload_storage must be one of {', '.join(PAYLOAD_STORAGE)}, "
                f"got {payload_storage!r}"
            )
        self.registry = registry
        self.policy = policy
        self.bus = bus
        self.audit = audit
        self.inbox = inbox
        self.clock = clock
        self.signer = signer
        self.durability = durability
        self.alert = alert
        self.default_timeout = default_timeout
        self.breaker_threshold = breaker_threshold
        self.breaker_recovery = breaker_recovery
        self.breakers: dict[str, CircuitBreaker] = {}
        # A delivery of a message id an agent already took is acked and audited, not handled
        # again (kept for ten minutes, at most 100,000 ids; pluggable for cross-process use).
        # ("is None", not "or": an empty store is falsy, it has a __len__.)
        self.idempotency: IdempotencyStore = (
            idempotency
            if idempotency is not None
            else MemoryIdempotencyStore(ttl=600.0, max_keys=100_000)
        )
        self.killswitch = KillSwitch(clock=clock, on_change=self._on_killswitch)
        # Deliveries per agent and window; what happens when one is spent (see _over_budget).
        self.budgets: dict[str, Budget] = dict(budgets or {})
        self.on_budget_exhausted = on_budget_exhausted
        # A message its agent gave up on (every attempt failed, or a permanent error) goes to
        # the bus's dead-letter store with the cause, besides being answered by the fallback.
        self.dead_letter = dead_letter
        # Every dispatched message carries the sha256 of the policy that allowed it; delivery
        # refuses one decided under any other policy (a process on a stale or rogue policy),
        # except the hashes listed here (a rolling upgrade).
        self.accepted_policies = frozenset((policy.sha256, *accept_policies))
        # Spans of the dispatch path (None: no spans, and no cost on the hop).
        self.tracing = tracing
        # Metrics read the counters below when the SDK collects; only the handler duration
        # is recorded per delivery (None: no metrics).
        self.metrics = Metrics(meter_provider, self) if meter_provider is not None else None
        self.payload_storage: PayloadStorage = payload_storage
        # ``redacted`` storage uses the detector of the policy's first pii check (its entity
        # list, and the matches that check already found), else one for every entity.
        self._redactor: PiiDetector | None = None
        if payload_storage == "redacted":
            self._redactor = _pii_detector(policy) or PiiDetector()
        # A candidate policy evaluated beside the enforced one on live traffic; differences
        # are audited (kind ``shadow``), never enforced.
        self.shadow = shadow
        self._background: set[asyncio.Task[None]] = set()
        self.stats: dict[str, AgentStats] = {}
        self._rare: Counter[str] = Counter()
        self._waiters: dict[str, asyncio.Future[Message]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._inbox_sub: Subscription | None = None
        self._unclaimed: list[Message] = []
        self._shapes: dict[tuple[str, ...], _Shape] = {}
        self._declassifiers = tuple(
            c for c in policy.checks if c.kind == "declassify" and c.enforcing
        )
        self._watchdog = Watchdog()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._attaching: dict[str, asyncio.Task[None]] = {}
        self._targets: dict[str, list[tuple[AgentCard | None, str]]] = {}
        # Hot-path counters are plain ints; ``counters`` merges them with the rare ones.
        self._dispatched = 0
        self._allowed = 0
        self._delivered = 0
        self._state: Literal["new", "running", "closing", "closed"] = "new"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, agents: Sequence[str] | None = None) -> None:
        """Subscribe the chosen agents (default: all registered) and this node's inbox."""
        if self._state == "running":
            return
        if self._state != "new":
            raise BusClosedError("this orchestrator was closed and cannot be started again")
        self.registry.validate()
        await self.audit.start()
        await self.bus.start()
        self._inbox_sub = await self.bus.subscribe(
            self._on_inbox, recipient=self.inbox, concurrency=64, max_attempts=1
        )
        names = list(agents) if agents is not None else [a.card.name for a in self.registry]
        for name in names:
            await self.attach(self.registry.get(name))
        self._loop = asyncio.get_running_loop()
        self.registry.on_register(self._on_registered)
        self._state = "running"
        started: dict[str, Any] = {"agents": names, **self._policy_data()}
        if self.shadow is not None:
            started["shadow_policy"] = {
                "name": self.shadow.name,
                "version": self.shadow.version,
                "sha256": self.shadow.sha256,
            }
        self._record("admin", "start", data=started)

    def _on_registered(self, agent: Agent) -> None:
        """An agent registered after start: attach it; dispatch waits until it is attached,
        so it is never routable without a subscription (the message would be dropped)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._schedule_attach(agent)
        elif self._loop is not None:  # registered from another thread
            self._loop.call_soon_threadsafe(self._schedule_attach, agent)

    def _schedule_attach(self, agent: Agent) -> None:
        self._targets.clear()
        name = agent.card.name
        task = asyncio.get_running_loop().create_task(self.attach(agent))
        self._attaching[name] = task  # also the strong reference asyncio does not keep
        task.add_done_callback(lambda _t: self._attaching.pop(name, None))

    async def attach(self, agent: Agent) -> None:
        """Start delivering this agent's messages to it."""
        card = agent.card
        if card.name in self._subscriptions:
            return
        self.stats.setdefault(card.name, AgentStats())
        self._subscriptions[card.name] = await self.bus.subscribe(
            self._delivery_handler(agent),
            recipient=card.name,
            group=card.name,
            concurrency=card.concurrency,
            max_attempts=card.max_attempts,
        )

    @property
    def counters(self) -> Counter[str]:
        """Totals since start: dispatched, allowed, denied, delivered, fallbacks, failed, ..."""
        merged = Counter(self._rare)
        merged.update(dispatched=self._dispatched, allowed=self._allowed, delivered=self._delivered)
        return +merged

    # -- what the metrics read (govbus.telemetry.metrics.MetricsSource) --------------------------

    def metric_counts(self) -> Mapping[str, int]:
        return self.counters

    def agent_handled(self) -> Mapping[str, int]:
        return {name: stats.handled for name, stats in self.stats.items()}

    def breaker_states(self) -> Mapping[str, str]:
        return {name: breaker.state.value for name, breaker in self.breakers.items()}

    def audit_queue_depth(self) -> int | None:
        # SqlAuditStore.pending: events queued for its writer; other stores do not queue.
        depth = getattr(self.audit, "pending", None)
        return depth if isinstance(depth, int) else None

    @property
    def state(self) -> str:
        """``new``, ``running``, ``closing`` (draining, no new client traffic) or ``closed``."""
        return self._state

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Stop taking client traffic, drain in-flight work (handlers may still send their
        outputs), then flush the audit log. Nothing is lost."""
        if self._state == "new":
            self._state = "closed"
        if self._state != "running":
            return
        self._state = "closing"
        await self.bus.close(drain_timeout=drain_timeout)
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._watchdog.close()
        self._record("admin", "stop", data={"counters": dict(self.counters)})
        await self.audit.close()
        self._state = "closed"

    # -- steps 1-5: dispatch -----------------------------------------------------------------

    async def dispatch(self, message: Message, *, cause: Message | None = None) -> DispatchReport:
        """Govern ``message``: resolve recipients, evaluate the policy per recipient, publish
        what is allowed, answer what is denied. Raises :class:`NoRouteError` if nobody
        handles it."""
        if self.tracing is None:
            return await self._dispatch(message, cause, None)
        with self.tracing.publish(message) as span:
            try:
                report = await self._dispatch(message, cause, span)
            except GovbusError as exc:
                fail(span, exc.code)
                raise
            span.set_attribute(RECIPIENTS, len(report.decisions))
            allowed = sum(1 for d in report.decisions if d.allowed)
            span.set_attribute(
                DECISION,
                "allow" if allowed == len(report.decisions) else "deny" if not allowed else "mixed",
            )
            deciding = next((d.check for d in report.decisions if d.check), None)
            if deciding is not None:
                span.set_attribute(DECIDING_CHECK, deciding)
            return report

    async def _dispatch(
        self, message: Message, cause: Message | None, span: Span | None
    ) -> DispatchReport:
        self._dispatched += 1
        if self._attaching:  # agents registered at runtime become routable once attached
            await asyncio.gather(*list(self._attaching.values()))
        targets = self._resolve(message, cause)
        now = self.clock()
        if message.deadline is not None and message.deadline <= now:
            await self._fail(message, None, "deadline_exceeded", "deadline passed before dispatch")
            return DispatchReport(message.id, ())
        trace_stamp: dict[str, str] | None = None
        evaluations = False  # a policy span per recipient (only when this trace is sampled)
        if span is not None:
            evaluations = span.is_recording()
            assert self.tracing is not None
            trace_stamp = self.tracing.stamp(span)
            if TRACEPARENT not in message.metadata:
                # A client message without trace context gets this dispatch's, before any
                # check (a policy may require a traceparent) sees it.
                message = message.model_copy(
                    update={"metadata": {**message.metadata, **trace_stamp}}
                )
        scan = MessageScan(message)
        sender_card = self.registry.card(message.sender)
        relay = _reply_address(message, cause)
        lowered = (
            cause.classification.value
            if cause is not None and message.classification < cause.classification
            else None
        )
        decisions = []
        for card, address in targets:
            started = time.time_ns() if evaluations else 0
            inp = _new_tuple(CheckInput, (message, card, sender_card, now, scan, cause, _NO_ATTRS))
            evaluation = self.policy.evaluate(inp)
            recipient = card.name if card is not None else (message.to or address)
            if self.shadow is not None:
                self._compare_shadow(self.shadow.evaluate(inp), evaluation, message, recipient)
            if evaluations:
                assert self.tracing is not None
                self.tracing.policy(
                    self.policy, recipient, evaluation.results, evaluation.deciding,
                    evaluation.allowed, started, time.time_ns(),
                )  # fmt: skip
            decision = await self._decide(
                message, evaluation, card, recipient, address, scan, relay, now, lowered,
                trace_stamp,
            )  # fmt: skip
            decisions.append(decision)
        return DispatchReport(message.id, tuple(decisions))

    def _resolve(
        self, message: Message, cause: Message | None
    ) -> list[tuple[AgentCard | None, str]]:
        """Step 2: ``(recipient card or None for a client, bus address)`` pairs."""
        reply_address = _reply_address(message, cause)
        if message.to is not None:
            card = self.registry.card(message.to)
            if card is not None:
                return [(card, reply_address or card.name)]
            address = reply_address or message.metadata.get(REPLY_TO)
            if reply_address is not None:
                return [(None, reply_address)]
            self._no_route(message, f"no agent named {message.to!r} and no reply address")
            raise NoRouteError(
                f"message {message.id} ({message.type}) is addressed to {message.to!r}, which is "
                f"neither a registered agent nor a waiting requester (address {address!r})"
            )
        targets = self._targets.get(message.type)
        if targets is not None:
            return targets
        cards = self.registry.resolve(message.type)
        if not cards:
            self._no_route(message, "no agent handles this type")
            raise NoRouteError(
                f"no agent handles message type {message.type!r} (message {message.id} from "
                f"{message.sender!r}); registered agents: "
                + (", ".join(f"{c.name}: {'|'.join(c.handles)}" for c in self.registry.cards))
            )
        targets = [(c, c.name) for c in cards]
        self._targets[message.type] = targets
        return targets

    async def _decide(
        self,
        message: Message,
        evaluation: Evaluation,
        card: AgentCard | None,
        recipient: str,
        address: str,
        scan: MessageScan,
        relay: str | None,
        now: datetime,
        declassified_from: str | None = None,
        trace_stamp: dict[str, str] | None = None,
    ) -> RecipientDecision:
        results = evaluation.results
        outcomes = tuple([r.outcome for r in results])
        shape = self._shapes.get(outcomes)
        if shape is None:
            # The per-check outcome map repeats message after message: analyse each shape once.
            shape = _Shape(
                {r.check_id: r.outcome for r in results},
                any(o not in ("allow", "skipped") for o in outcomes),
                "would_deny" in outcomes,
            )
            if len(self._shapes) < 1024:
                self._shapes[outcomes] = shape
        data: dict[str, Any] = {
            "policy": self.policy.name,
            "policy_version": self.policy.version,
            "checks": shape.checks,
            "classification": message.classification.value,
        }
        if shape.noteworthy:
            data["findings"] = [
                r.as_record() for r in results if r.outcome not in ("allow", "skipped")
            ]
        if evaluation.obligations:
            data["obligations"] = list(evaluation.obligations)
        if declassified_from is not None:
            data["declassified_from"] = declassified_from
        storage = self.payload_storage
        payload: bytes | None = None
        if storage != "none":
            payload = scan.payload_json
            data["payload_storage"] = storage
            data["envelope"] = _envelope(message)
            if storage == "full":
                data["payload"] = message.payload
            elif storage == "redacted":
                assert self._redactor is not None
                clean = redact_personal_data(scan, self._redactor)
                data["payload"] = clean.payload
                data["envelope"]["metadata"] = clean.metadata

        if not evaluation.allowed:
            deciding = evaluation.deciding
            check = deciding.check_id if deciding else None
            code = deciding.code if deciding else "denied"
            reason = deciding.reason if deciding else "denied by policy"
            data["deciding"] = check
            self._rare["denied"] += 1
            self._rare[f"denied:{check}"] += 1
            if card is not None:
                self._stats(card.name).denied += 1
            await self._audit(
                "decision",
                "deny",
                message,
                recipient=recipient,
                data=data,
                ts=now,
                payload=payload,
            )
            await self._answer(
                message,
                DENIED,
                {
                    "check": check,
                    "code": code,
                    "reason": reason,
                    "recipient": recipient,
                    "denied_message_id": message.id,
                    "denied_type": message.type,
                    "policy": self.policy.name,
                    "policy_sha256": self.policy.sha256,
                },
                relay=relay,
            )
            return RecipientDecision(recipient, False, check, code, reason)

        self._allowed += 1
        if shape.would_deny:
            self._rare["would_deny"] += 1
        # A message routed by type keeps ``to: null`` (the envelope as sent); the bus address
        # routes it, and the decision record names the recipient.
        out = evaluation.message
        if trace_stamp is not None:
            # The delivery span, wherever it runs, is a child of this dispatch's span.
            out = out.model_copy(
                update={
                    "metadata": {**out.metadata, POLICY_SHA256: self.policy.sha256, **trace_stamp}
                }
            )
        elif out.metadata.get(POLICY_SHA256) != self.policy.sha256:
            out = out.model_copy(
                update={"metadata": {**out.metadata, POLICY_SHA256: self.policy.sha256}}
            )
        if self.signer is not None:
            out = self.signer.sign(out)
        await self._audit(
            "decision",
            "allow",
            message,
            recipient=recipient,
            data=data,
            ts=now,
            payload=payload,
        )
        try:
            await self.bus.publish(out, address=address)
        except BusError as exc:
            await self._fail(message, card, exc.code, str(exc))
            return RecipientDecision(recipient, False, None, exc.code, str(exc))
        return _new_tuple(RecipientDecision, (recipient, True, None, None, None))

    # -- steps 6-7: delivery and failure -------------------------------------------------------

    def _delivery_handler(self, agent: Agent) -> Callable[[Delivery], Awaitable[None]]:
        card = agent.card

        async def on_delivery(delivery: Delivery) -> None:
            await self._deliver(agent, card, delivery)

        return on_delivery

    async def _deliver(self, agent: Agent, card: AgentCard, delivery: Delivery) -> None:
        # Log lines made while this message is handled carry its trace and correlation ids.
        marked = CURRENT_MESSAGE.set(delivery.message)
        try:
            if self.tracing is None:
                await self._deliver_one(agent, card, delivery)
                return
            with self.tracing.process(delivery.message, card, delivery.attempt) as span:
                result = await self._deliver_one(agent, card, delivery)
                if result in _QUIET_OUTCOMES:
                    span.set_attribute(OUTCOME, result)
                else:
                    fail(span, result)
        finally:
            CURRENT_MESSAGE.reset(marked)

    async def _deliver_one(self, agent: Agent, card: AgentCard, delivery: Delivery) -> str:
        """Steps 6-7 for one delivery; returns its outcome (``ok``, ``duplicate`` or why not)."""
        message = delivery.message
        if self.signer is not None:
            try:
                self.signer.verify(message)
            except EnvelopeError as exc:
                await self._audit(
                    "rejected", exc.code, message, recipient=card.name, data={"error": str(exc)}
                )
                await delivery.term(str(exc))
                return exc.code
        decided = message.metadata.get(POLICY_SHA256)
        if decided not in self.accepted_policies:
            await self._refuse_policy(message, card, delivery, decided)
            return "policy_mismatch"
        if self.killswitch.is_paused(card.name):
            if self.killswitch.mode(card.name) == "hold":
                await self.killswitch.wait_resumed(card.name)
            if self.killswitch.is_paused(card.name):
                await self._audit("delivery", "agent_paused", message, recipient=card.name, data={})
                await self._fallback(message, card, "agent_paused", "the agent is paused")
                return "agent_paused"
        key = f"{card.name}:{message.id}"
        # A claim, not a mark: if this process dies mid-handler, the claim lapses and the
        # bus's redelivery to another process is handled rather than dropped as a duplicate.
        if await self.idempotency.seen(key, lease=card.timeout + _CLAIM_GRACE):
            self._rare["duplicates"] += 1
            await self._audit(
                "delivery", "duplicate", message, recipient=card.name,
                data={"attempt": delivery.attempt},
            )  # fmt: skip
            return "duplicate"  # acked: the first delivery of this id is (or was) handled
        if await self._over_budget(message, card):
            return "budget_exhausted"
        permit = self._breaker(card).try_acquire()
        if permit is None:
            await self._audit("delivery", "circuit_open", message, recipient=card.name, data={})
            await self._fallback(message, card, "circuit_open", "the agent's circuit is open")
            return "circuit_open"
        stats = self._stats(card.name)
        stats.last_seen = now = self.clock()
        budget = hop_budget(message, card.timeout, now)
        if budget <= 0:
            permit.release()
            await self._audit(
                "delivery", "deadline_exceeded", message, recipient=card.name, data={}
            )
            await self._fail(message, card, "deadline_exceeded", "deadline passed before delivery")
            return "deadline_exceeded"
        started = time.monotonic()
        ctx = DeliveryContext(self, message, card, started + budget)
        error: GovbusError | None = None
        outputs: list[Message] = []
        timer = self._watchdog.arm(budget)
        # Calls made inside the handler (models, user code via time_left()) see the hop's end,
        # less a small reserve (10%, at most 50 ms) so the handler can still act on their
        # timeout error before its own watchdog fires.
        hop = HOP_DEADLINE.set(started + budget - min(0.05, budget * 0.1))
        handling = self.tracing.begin_handle(card) if self.tracing is not None else None
        try:
            result = await agent.handle(message, ctx)
        except asyncio.CancelledError:
            if not timer.disarm():
                permit.release()
                await self.idempotency.forget(key)
                raise  # the worker itself is being cancelled, not this hop timing out
            error = self._timeout_error(card, budget)
        except GovbusError as exc:
            error = self._timeout_error(card, budget) if timer.disarm() else exc
        except Exception as exc:
            if timer.disarm():
                error = self._timeout_error(card, budget)
            else:
                error = AgentFailedError(f"agent {card.name!r} raised {type(exc).__name__}: {exc}")
                error.__cause__ = exc
        else:
            if timer.disarm():  # the handler swallowed the cancellation: still a timeout
                error = self._timeout_error(card, budget)
            else:
                try:
                    outputs = self._outputs(result, message, card, ctx.degradation)
                except GovbusError as exc:
                    error = exc
        finally:
            HOP_DEADLINE.reset(hop)
            if handling is not None:  # error is known here: except and else ran first
                Tracing.end_handle(handling, error.code if error is not None else None)
        elapsed = time.monotonic() - started
        elapsed_ms = round(elapsed * 1000, 3)
        if self.metrics is not None:
            self.metrics.handler_duration(card.name, "ok" if error is None else error.code, elapsed)

        if error is None:
            await self.idempotency.done(key)
            permit.record_success()
            stats.handled += 1
            self._delivered += 1
            await self._audit(
                "delivery",
                "ok",
                message,
                recipient=card.name,
                data={"duration_ms": elapsed_ms, "outputs": len(outputs)},
            )
            for out in outputs:
                try:
                    await self.dispatch(out, cause=message)
                except NoRouteError as exc:
                    log.warning("output of agent %s has no route: %s", card.name, exc)
            return "ok"

        permit.record_failure()
        cause = error.code
        await self._audit(
            "delivery",
            cause,
            message,
            recipient=card.name,
            data={"duration_ms": elapsed_ms, "error": str(error), "attempt": delivery.attempt},
        )
        if error.retryable and delivery.attempt < card.max_attempts:
            await self.idempotency.forget(key)  # the redelivery must be handled, not dropped
            await delivery.nack(reason=cause)
            return cause
        await self.idempotency.done(key)  # settled: the fallback (or failure) answers it
        if self.dead_letter and message.metadata.get(FALLBACK_OF) is None:
            # The agent gave up on this message: keep it, with why, for inspection and replay
            # (``govbus dlq``). A fallback's own failure is not kept twice.
            self._rare["dead_lettered"] += 1
            await delivery.term(f"{cause}: {error}")
            await self._alert(Alert("dead_letter", card.name, message.id, cause, str(error)))
        await self._fallback(message, card, cause, str(error))
        return cause

    async def _refuse_policy(
        self, message: Message, card: AgentCard, delivery: Delivery, decided: str | None
    ) -> None:
        """A message allowed under a policy this process does not accept (or under none: it
        reached the bus without governance) is not handled: audited, dead-lettered, and the
        sender gets ``govbus.failed`` (``policy_mismatch``)."""
        self._rare["policy_mismatch"] += 1
        detail = (
            f"message was dispatched under policy {decided[:12]}..., this process enforces "
            f"{self.policy.name} {self.policy.version} ({self.policy.sha256[:12]}...)"
            if decided
            else "message carries no policy hash: it reached the bus without governance"
        )
        await self._audit(
            "rejected", "policy_mismatch", message, recipient=card.name,
            data={"decided_under": decided, "accepted": sorted(self.accepted_policies)},
        )  # fmt: skip
        await delivery.term(f"policy_mismatch: {detail}")
        await self._fail(message, card, "policy_mismatch", detail)

    def _compare_shadow(
        self, shadow: Evaluation, enforced: Evaluation, message: Message, recipient: str
    ) -> None:
        """Audit how the shadow policy's verdict on this message differs, if it does."""
        assert self.shadow is not None
        mine = {r.check_id: r.outcome for r in enforced.results}
        theirs = {r.check_id: r for r in shadow.results}
        changed = []
        for check in dict.fromkeys([*mine, *theirs]):
            before = mine.get(check)
            result = theirs.get(check)
            after = result.outcome if result is not None else None
            # A check only one policy has, that lets the message through, changes nothing.
            if before != after and not (_passes(before) and _passes(after)):
                changed.append(
                    {"id": check, "enforced": before, "shadow": after,
                     "code": result.code if result is not None else None}
                )  # fmt: skip
        if shadow.allowed == enforced.allowed and not changed:
            return
        self._rare["shadow_differs"] += 1
        self._record(
            "shadow",
            "differs",
            message,
            recipient=recipient,
            data={
                "policy": self.shadow.name,
                "policy_version": self.shadow.version,
                "policy_sha256": self.shadow.sha256,
                "enforced": "allow" if enforced.allowed else "deny",
                "shadow": "allow" if shadow.allowed else "deny",
                "checks": {r.check_id: r.outcome for r in shadow.results},
                "changed": changed,
            },
        )

    def _may_declassify(self, out: Message, cause: Message, card: AgentCard) -> bool:
        """True if an enforcing ``declassify`` check permits ``out`` to sit below its cause."""
        if not self._declassifiers:
            return False
        inp = CheckInput(out, None, card, self.clock(), MessageScan(out), cause)
        for check in self._declassifiers:
            try:
                if check.when.applies(inp) and type(check.fn(inp)) is Allow:
                    return True
            except Exception:  # a broken rule permits nothing (fail closed)
                log.exception("declassify check %s failed; the classification stays", check.id)
        return False

    @staticmethod
    def _timeout_error(card: AgentCard, budget: float) -> AgentTimeoutError:
        return AgentTimeoutError(
            f"agent {card.name!r} did not finish within {budget:.3f}s "
            f"(timeout {card.timeout}s, bounded by the message deadline)"
        )

    def _outputs(
        self,
        result: HandlerResult,
        cause: Message,
        card: AgentCard,
        degradation: dict[str, str] | None,
    ) -> list[Message]:
        if result is None:
            return []
        items = [result] if isinstance(result, Message) else list(result)
        return [self.normalize_output(m, cause, card, degradation) for m in items]

    def normalize_output(
        self,
        out: object,
        cause: Message,
        card: AgentCard,
        degradation: dict[str, str] | None = None,
    ) -> Message:
        """Step 8 preparation: an agent's output inherits the conversation, the actor, the
        deadline and (at least) the classification of the message that caused it."""
        if not isinstance(out, Message):
            raise AgentFailedError(
                f"agent {card.name!r} returned {type(out).__name__}; handlers return a Message, "
                "a list of Messages, or None"
            )
        if out.sender != card.name:
            raise AgentFailedError(
                f"agent {card.name!r} emitted a message from {out.sender!r}; "
                "agents may only send as themselves"
            )
        update: dict[str, Any] = {}
        if out.causation_id is None:
            update["causation_id"] = cause.id
        if out.correlation_id is None:
            update["correlation_id"] = cause.correlation_id or cause.id
        if out.actor is None and cause.actor is not None:
            update["actor"] = cause.actor
        if out.deadline is None and cause.deadline is not None:
            update["deadline"] = cause.deadline
        if out.classification < cause.classification and not self._may_declassify(
            out.model_copy(update=update) if update else out, cause, card
        ):
            # Classification only rises along a causal chain; lowering needs a declassify
            # rule, so here it is raised back to the cause's level, before any check sees it.
            update["classification"] = cause.classification
        # A result produced from a degraded input, or from degraded/missing sub-results, is
        # itself degraded: the marking travels along the causal chain to the final answer.
        inherited = degradation or {}
        if cause.metadata.get(DEGRADED) == "true":
            inherited = {
                **{k: cause.metadata[k] for k in DEGRADATION_KEYS if k in cause.metadata},
                **inherited,
            }
        if inherited and out.metadata.get(DEGRADED) != "true":
            update["metadata"] = {**out.metadata, **inherited}
        return out.model_copy(update=update) if update else out

    async def _fallback(self, message: Message, card: AgentCard, cause: str, detail: str) -> None:
        stats = self._stats(card.name)
        if message.metadata.get(FALLBACK_OF) is not None or card.fallback is None:
            # A fallback that fails yields govbus.failed: it never loops.
            stats.failures += 1
            why = "fallback_failed" if message.metadata.get(FALLBACK_OF) else cause
            await self._fail(message, card, why, detail)
            return
        stats.fallbacks += 1
        self._rare["fallbacks"] += 1
        self._rare[f"fallback:{cause}"] += 1
        rerouted = message.model_copy(
            update={
                "to": card.fallback,
                "attempt": 1,
                "metadata": {
                    **message.metadata,
                    DEGRADED: "true",
                    FALLBACK_CAUSE: cause,
                    FALLBACK_OF: card.name,
                },
            }
        )
        await self._audit(
            "fallback",
            cause,
            message,
            recipient=card.name,
            data={"fallback": card.fallback, "detail": detail},
        )
        await self._alert(Alert("fallback", card.name, message.id, cause, detail))
        with self.tracing.fallback(card, cause) if self.tracing is not None else _NO_SPAN:
            try:
                await self.dispatch(rerouted, cause=None)
            except GovbusError as exc:
                await self._fail(message, card, exc.code, str(exc))

    async def _fail(
        self, message: Message, card: AgentCard | None, cause: str, detail: str
    ) -> None:
        self._rare["failed"] += 1
        name = card.name if card is not None else (message.to or "-")
        await self._audit("failure", cause, message, recipient=name, data={"detail": detail})
        await self._alert(Alert("failure", name, message.id, cause, detail))
        await self._answer(
            message,
            FAILED,
            {"code": cause, "reason": detail, "agent": name, "failed_message_id": message.id},
        )

    # -- answers to senders --------------------------------------------------------------------

    async def _answer(
        self, about: Message, type: str, payload: dict[str, Any], *, relay: str | None = None
    ) -> None:
        """Send ``govbus.denied`` / ``govbus.failed`` about ``about`` to its sender.

        Goes to the sender's inbox when it is waiting for a reply; to the sending agent if it
        handles the notice type; otherwise the audit record is the evidence (and it is logged).
        """
        notice = Message(
            type=type,
            sender=SYSTEM_SENDER,
            to=about.sender,
            classification=about.classification,
            payload=payload,
            actor=about.actor,
            metadata={k: v for k, v in about.metadata.items() if k != REPLY_TO},
            correlation_id=about.correlation_id or about.id,
            causation_id=about.id,
        )
        address = about.metadata.get(REPLY_TO)
        sender_card = self.registry.card(about.sender)
        if address is None and sender_card is not None and sender_card.accepts(type):
            address = sender_card.name
        if address is not None:
            await self._publish_quietly(notice, address)
        else:
            log.info(
                "%s for message %s (%s) from %s recorded in the audit log",
                type,
                about.id,
                about.type,
                about.sender,
            )
        if relay is not None and about.causation_id is not None:
            # The blocked message was itself a reply to a waiting requester: tell the
            # requester now rather than letting it wait for its timeout.
            relayed = notice.model_copy(update={"causation_id": about.causation_id, "to": about.to})
            await self._publish_quietly(relayed, relay)

    async def _publish_quietly(self, message: Message, address: str) -> None:
        if address == self.inbox:
            # A notice for a request waiting in this process is handed over here: it must
            # not depend on the bus, which may be why the request failed (bus_unavailable).
            self._take_reply(message)
            return
        try:
            await self.bus.publish(message, address=address)
        except BusError as exc:
            log.error("could not deliver %s %s to %s: %s", message.type, message.id, address, exc)

    # -- request / reply -----------------------------------------------------------------------

    async def request(
        self, message: Message, *, timeout: float | None = None, cause: Message | None = None
    ) -> Message:
        """Dispatch ``message`` and wait for its first reply.

        The result is the reply, or a ``govbus.denied``/``govbus.failed`` message (a timeout
        yields a local ``govbus.failed`` with code ``request_timeout``). Raises
        :class:`NoRouteError` if nobody handles the message.
        """
        wait = self.default_timeout if timeout is None else timeout
        deadline = self.clock() + timedelta(seconds=wait)
        update: dict[str, Any] = {"metadata": {**message.metadata, REPLY_TO: self.inbox}}
        if message.deadline is None or message.deadline > deadline:
            update["deadline"] = deadline
        message = message.model_copy(update=update)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiters[message.id] = future
        try:
            await self.dispatch(message, cause=cause)
            async with asyncio.timeout(wait):
                return await future
        except TimeoutError:
            self._rare["request_timeout"] += 1
            await self._audit(
                "failure",
                "request_timeout",
                message,
                recipient=message.to,
                data={"timeout_s": wait},
            )
            return Message(
                type=FAILED,
                sender=SYSTEM_SENDER,
                to=message.sender,
                classification=message.classification,
                payload={
                    "code": "request_timeout",
                    "reason": f"no reply within {wait:.3f}s",
                    "failed_message_id": message.id,
                },
                actor=message.actor,
                correlation_id=message.correlation_id or message.id,
                causation_id=message.id,
            )
        finally:
            self._waiters.pop(message.id, None)

    async def gather(
        self,
        messages: Sequence[Message],
        *,
        timeout: float | None = None,
        cause: Message | None = None,
    ) -> list[Message]:
        """Request every message in parallel; latency is the slowest, not the sum."""
        return list(
            await asyncio.gather(*(self.request(m, timeout=timeout, cause=cause) for m in messages))
        )

    async def _on_inbox(self, delivery: Delivery) -> None:
        self._take_reply(delivery.message)

    def _take_reply(self, message: Message) -> None:
        future = self._waiters.get(message.causation_id or "")
        if future is not None and not future.done():
            future.set_result(message)
            return
        self._rare["unclaimed_replies"] += 1
        if len(self._unclaimed) < 1000:
            self._unclaimed.append(message)

    @property
    def unclaimed(self) -> list[Message]:
        """Replies that reached this node's inbox with nobody waiting (e.g. after a timeout)."""
        return list(self._unclaimed)

    # -- helpers -------------------------------------------------------------------------------

    # -- circuit breakers and the kill switch ------------------------------------------------------

    def _breaker(self, card: AgentCard) -> CircuitBreaker:
        breaker = self.breakers.get(card.name)
        if breaker is None:
            breaker = self.breakers[card.name] = CircuitBreaker(
                self.breaker_threshold, self.breaker_recovery, name=card.name
            )
            name = card.name
            breaker.on_state_change = lambda old, new: self._on_breaker(name, old, new)
        return breaker

    def _on_breaker(self, agent: str, old: BreakerState, new: BreakerState) -> None:
        self._rare[f"breaker:{new.value}"] += 1
        self._record("admin", f"breaker_{new.value}", data={"agent": agent, "from": old.value})
        if new is BreakerState.OPEN and self._loop is not None:
            detail = f"{self.breaker_threshold} consecutive failures"
            alert = Alert("breaker_open", agent, "", "circuit_open", detail)
            task = self._loop.create_task(self._alert(alert))
            self._background.add(task)  # keep a reference until it is done
            task.add_done_callback(self._background.discard)

    async def _over_budget(self, message: Message, card: AgentCard) -> bool:
        """Spend one delivery of ``card``'s budget; True when the message was handled instead
        (its fallback, or a ``govbus.failed`` answer with ``deny``). With ``alert`` the
        delivery goes ahead and only the alert and the audit record say the budget is spent.
        """
        budget = self.budgets.get(card.name)
        if budget is None or budget.try_spend(card.name, 1):
            return False
        self._rare["budget_exhausted"] += 1
        mode = self.on_budget_exhausted
        detail = f"{budget.limit:g} {budget.unit} per {budget.window:g}s spent"
        await self._audit(
            "delivery", "budget_exhausted", message, recipient=card.name,
            data={"mode": mode, "detail": detail},
        )  # fmt: skip
        await self._alert(
            Alert("budget_exhausted", card.name, message.id, "budget_exhausted", detail)
        )
        if mode == "alert":
            return False
        if mode == "fallback":
            await self._fallback(message, card, "budget_exhausted", detail)
        else:
            await self._fail(message, card, "budget_exhausted", detail)
        return True

    def _on_killswitch(self, event: KillSwitchEvent) -> None:
        self._record(
            "admin",
            event.action,
            data={"agent": event.agent, "by": event.by, "reason": event.reason,
                  "mode": event.mode},
        )  # fmt: skip

    def _stats(self, name: str) -> AgentStats:
        stats = self.stats.get(name)
        if stats is None:
            stats = self.stats[name] = AgentStats()
        return stats

    def _policy_data(self) -> dict[str, Any]:
        return {"policy": self.policy.name, "policy_version": self.policy.version}

    def _no_route(self, message: Message, why: str) -> None:
        self._rare["no_route"] += 1
        self._record("no_route", "no_route", message, data={"detail": why})

    async def _alert(self, alert: Alert) -> None:
        if self.alert is None:
            return
        try:
            result = self.alert(alert)
            if result is not None:
                await result
        except Exception:
            log.exception("alert hook failed for %s on %s", alert.kind, alert.agent)

    def _event(
        self,
        kind: str,
        outcome: str,
        message: Message | None,
        recipient: str | None,
        data: dict[str, Any],
        ts: datetime | None = None,
        payload: bytes | None = None,
    ) -> AuditEvent:
        if message is None:
            return AuditEvent(
                kind, ts or self.clock(), outcome, policy_sha256=self.policy.sha256, data=data
            )
        # tuple.__new__ skips the NamedTuple's generated Python __new__: two events per hop.
        return _new_tuple(
            AuditEvent,
            (
                kind,
                ts or self.clock(),
                outcome,
                message.id,
                message.correlation_id or message.id,
                message.type,
                message.sender,
                recipient,
                self.policy.sha256,
                data,
                payload,
            ),
        )

    def _record(
        self,
        kind: str,
        outcome: str,
        message: Message | None = None,
        *,
        recipient: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.audit.submit(self._event(kind, outcome, message, recipient, data or {}))

    async def _audit(
        self,
        kind: str,
        outcome: str,
        message: Message,
        *,
        recipient: str | None,
        data: dict[str, Any],
        ts: datetime | None = None,
        payload: bytes | None = None,
    ) -> None:
        event = self._event(kind, outcome, message, recipient, data, ts, payload)
        if self.durability == "sync":
            await self.audit.write(event)
        else:
            self.audit.submit(event)


def _passes(outcome: str | None) -> bool:
    """A check that is absent, skipped or allowing lets a message through unchanged."""
    return outcome in (None, "allow", "skipped")


def _envelope(message: Message) -> dict[str, Any]:
    """The header a decision record keeps (all but the payload), so a candidate policy can be
    replayed on recorded traffic. Built by hand: a model dump costs three times as much."""
    actor = message.actor
    return {
        "to": message.to,
        "actor": None
        if actor is None
        else {"subject": actor.subject, "roles": actor.roles, "tenant": actor.tenant},
        "metadata": message.metadata,
        "deadline": message.deadline,
        "causation_id": message.causation_id,
        "created_at": message.created_at,
    }


def _pii_detector(policy: Policy) -> PiiDetector | None:
    """The detector the policy's first ``pii`` check built, if it has one."""
    for check in policy.checks:
        if check.kind == "pii":
            detector = getattr(check.fn, "detector", None)
            if isinstance(detector, PiiDetector):
                return detector
    return None


def _reply_address(message: Message, cause: Message | None) -> str | None:
    """The inbox a reply must travel to, if ``message`` answers a waiting requester."""
    if (
        cause is not None
        and message.to is not None
        and message.to == cause.sender
        and message.causation_id == cause.id
    ):
        return cause.metadata.get(REPLY_TO)
    return None
