"""Run drills: each in isolation, on a fresh app, with its faults injected through
:mod:`govbus.drills.faults`; then check its expectations against the evidence.

Evidence comes from the app's own records, not from the drill: the replies, the audit log (an
in-memory store per drill, behind the spool unless the spool is switched off), the bus's
dead-letter store, the alerts and how often each agent's handler ran.

A drill with ``bus: nats`` runs its app on :class:`~govbus.bus.nats.NatsBus` against a private
``nats-server`` (:class:`~govbus.drills.broker.NatsServer`: a free port of 127.0.0.1, a
JetStream store in the drill's temporary directory), started before the app and stopped by its
process id afterwards; a shared server is never used. The bus keeps dead letters in memory
(where the evidence reads them) and has a short ``ack_wait`` (3 s), so that a delivery lost
with a server's connection comes back well inside a request's timeout. Its evidence adds the
restarts, publishes that failed, and redeliveries the idempotency store caught.

Each drill proves one mechanism (``spec.proves``). ``disable`` switches mechanisms off, to show
that the drill then fails (the can-fail tests, and ``govbus drill run --disable``):

==============  ====================================================================
mechanism       switched off by
==============  ====================================================================
fallback        removing every agent's fallback from its card
deadline        raising every agent's timeout to an hour
breaker         raising the breaker threshold out of reach
budget          not installing the drill's budgets
retry           making every model call a single attempt
dlq             turning dead-lettering off
idempotency     an idempotency store that remembers nothing
spool           writing the audit store directly, without the local spool
bulkhead        running every agent in one shared pool of workers
publish_retry   a NATS publish gets one 50 ms attempt instead of retrying through a
                reconnect (``NatsBus.publish_timeout``, set once the app has started)
==============  ====================================================================
"""

from __future__ import annotations

import asyncio
import functools
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from govbus.audit import AuditRecord, AuditStore, MemoryAuditStore, SpoolingAuditStore
from govbus.bus import Bus, InMemoryBus, MemoryDeadLetterStore
from govbus.drills.broker import NOT_INSTALLED, NatsServer, find_nats_server
from govbus.drills.faults import (
    BrokerRestarts,
    DuplicatingBus,
    FaultyAgent,
    FaultyAuditStore,
    FaultyModel,
    ForgetfulIdempotency,
    SharedPool,
    Trigger,
)
from govbus.drills.spec import (
    AGENT_FAULTS,
    MECHANISMS,
    AgentSettings,
    Bound,
    Drill,
    DrillMessage,
)
from govbus.envelope import FALLBACK_CAUSE, Message
from govbus.errors import DrillError, EnvelopeError, GovbusError
from govbus.orchestrator import Alert, App, load_app, outcome
from govbus.registry import Agent
from govbus.resilience import Budget

if TYPE_CHECKING:
    from govbus.bus.nats import NatsBus

_LOST_AGENT_TIMEOUT = 3600.0
_DEFAULT_POOL = 16
_SPOOL_CATCH_UP = 10.0  # seconds a recovered audit store gets to take the spooled records
_SPOOL_POLL = 0.02
#: ``publish_retry`` switched off: a publish gets one short attempt instead of retrying
#: through a reconnect until ``publish_timeout`` (10 s by default).
_NO_PUBLISH_RETRY = 0.05
#: NatsBus settings for drills on NATS (see _nats_bus).
_NATS_OPTIONS: dict[str, Any] = {"ack_wait": 3.0, "redelivery_base": 0.02, "redelivery_max": 0.5}


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of a drill and whether the evidence met it."""

    name: str
    passed: bool
    expected: Any
    actual: Any

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
        }


@dataclass(slots=True)
class DrillResult:
    """The verdict on one drill, with its evidence."""

    name: str
    source: str
    faults: list[str]
    proves: str
    checks: list[Check] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    disabled: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "drill": self.name,
            "source": self.source,
            "faults": self.faults,
            "proves": self.proves,
            "passed": self.passed,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "disabled": self.disabled,
            "checks": [c.as_dict() for c in self.checks],
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class _Sent:
    spec: int  # index into spec.messages
    message_id: str
    reply: Message
    latency_ms: float

    @property
    def outcome(self) -> str:
        return outcome(self.reply)


async def run_drill(drill: Drill, *, disable: Iterable[str] = ()) -> DrillResult:
    """Run ``drill`` on a fresh app and check its expectations. Never raises for a failing
    drill: problems (a bad app reference, an unknown agent) are the result's ``error``."""
    off = sorted(set(disable))
    unknown = [m for m in off if m not in MECHANISMS]
    if unknown:
        raise DrillError(
            f"cannot disable {', '.join(unknown)}: known mechanisms are {', '.join(MECHANISMS)}"
        )
    result = DrillResult(
        drill.name, drill.source, drill.fault_kinds, drill.spec.proves, disabled=off
    )
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="govbus-drill-") as tmp:
            await _run(drill, frozenset(off), Path(tmp), result)
    except (GovbusError, ValidationError, TimeoutError) as exc:
        result.error = _error_text(exc)
    result.seconds = time.perf_counter() - started
    return result


async def run_drills(
    paths: Iterable[Path],
    *,
    disable: Iterable[str] = (),
    on_result: Callable[[DrillResult], None] | None = None,
) -> list[DrillResult]:
    """Load and run every drill file in ``paths``, one after another."""
    from govbus.drills.spec import load_drill

    results = []
    for path in paths:
        try:
            drill = load_drill(path)
        except DrillError as exc:
            result = DrillResult(path.stem, str(path), [], "-", error=str(exc))
        else:
            result = await run_drill(drill, disable=disable)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the drill did not finish in time (its app hung)"
    return str(exc)


async def _run(drill: Drill, off: frozenset[str], tmp: Path, result: DrillResult) -> None:
    server = _private_server(tmp) if drill.spec.bus == "nats" else None
    try:
        if server is not None:
            try:
                await asyncio.to_thread(server.start)
            except (OSError, RuntimeError) as exc:
                raise DrillError(
                    f"bus: nats: the private nats-server did not start: {exc}"
                ) from None
        await _run_app(drill, off, tmp, result, server)
    finally:
        if server is not None:
            await asyncio.to_thread(server.close)


async def _run_app(
    drill: Drill, off: frozenset[str], tmp: Path, result: DrillResult, server: NatsServer | None
) -> None:
    spec = drill.spec
    triggers = [Trigger(f) for f in spec.faults]

    store = MemoryAuditStore(node=f"drill-{drill.name}")
    audit: AuditStore = store
    for trigger in triggers:
        if trigger.fault.kind == "audit_down":
            audit = FaultyAuditStore(audit, trigger)
    spool = None
    if "spool" not in off:
        audit = spool = SpoolingAuditStore(audit, tmp / "audit.spool", retry_interval=_SPOOL_POLL)
    dlq = MemoryDeadLetterStore()
    nats_bus: NatsBus | None = None
    bus: Bus
    if server is None:
        bus = InMemoryBus(dead_letters=dlq)
    else:
        bus = nats_bus = _nats_bus(server.url, dlq, drill.name)
    for trigger in triggers:
        if trigger.fault.kind == "duplicate_delivery":
            bus = DuplicatingBus(bus, trigger)

    app = load_app(spec.app, bus=bus, audit=audit)

    alerts: Counter[str] = Counter()
    previous = app.alert

    async def record_alert(alert: Alert) -> None:
        alerts[alert.kind] += 1
        if previous is not None:
            outcome = previous(alert)
            if outcome is not None:
                await outcome

    app.alert = record_alert
    wrapped = _install(app, drill, triggers, off)

    in_flight = [0]
    restarts = [
        BrokerRestarts(server, t, lambda: in_flight[0])
        for t in triggers
        if t.fault.kind == "bus_restart" and server is not None
    ]
    sent: list[_Sent] = []
    total = sum(m.repeat for m in spec.messages)
    down = sum(
        t.fault.down_ms * (t.fault.first or 1) for t in triggers if t.fault.kind == "bus_restart"
    )
    limit = spec.timeout_s * math.ceil(total / spec.concurrency) + 30.0 + down / 1000
    async with asyncio.timeout(limit):
        await app.start()
        if nats_bus is not None and "publish_retry" in off:
            # Set once started: the bus's own start-up (routes, consumers) keeps its retries.
            nats_bus.publish_timeout = _NO_PUBLISH_RETRY
        try:
            gate = asyncio.Semaphore(spec.concurrency)

            async def send(index: int, item: DrillMessage, n: int) -> None:
                message = _message(drill, index, item, n)
                async with gate:
                    for restart in restarts:
                        await restart.before_request()
                    in_flight[0] += 1
                    t0 = time.perf_counter()
                    try:
                        reply = await app.request(message, timeout=spec.timeout_s)
                    finally:
                        in_flight[0] -= 1
                    elapsed = (time.perf_counter() - t0) * 1000
                sent.append(_Sent(index, message.id, reply, elapsed))

            await asyncio.gather(
                *(send(i, m, n) for i, m in enumerate(spec.messages) for n in range(m.repeat))
            )
            for restart in restarts:
                await restart.wait()  # a restart still under way ends before the evidence
            if spool is not None:
                # The store comes back; the spool catches up before the evidence is read.
                await _catch_up(spool)
        except BaseException:
            for restart in restarts:
                await restart.settle()
            await app.close(drain_timeout=1.0)  # the drill failed: do not wait long for it
            raise
        await app.close()

    verified = await store.verify()
    records = list(store.stored)
    letters = await dlq.entries()
    result.evidence = _evidence(sent, records, letters, alerts, wrapped, triggers, spool)
    result.evidence["audit_verified"] = verified.ok
    if nats_bus is not None:
        result.evidence["bus"] = _bus_evidence(nats_bus, records, restarts)
    result.checks = _checks(drill, sent, records, len(letters), alerts, wrapped, triggers)
    done = [entry for restarter in restarts for entry in restarter.restarts]
    for n, entry in enumerate(done):
        # Requests waiting when the server went, and requests published into the outage.
        traffic = {k: entry[k] for k in ("in_flight_at_stop", "sent_while_down")}
        result.checks.append(
            Check(
                f"bus_restart {n + 1} during traffic",
                all(v > 0 for v in traffic.values()),
                {"in_flight_at_stop": ">= 1", "sent_while_down": ">= 1"},
                traffic,
            )
        )
    if drill.spec.expect.audit_verified is not None:
        result.checks.append(
            Check(
                "audit_verified",
                verified.ok == drill.spec.expect.audit_verified,
                drill.spec.expect.audit_verified,
                verified.ok if verified.ok else f"broken: {verified.problem}",
            )
        )


def _private_server(tmp: Path) -> NatsServer:
    """The drill's own nats-server (not started yet): a free port, a store under ``tmp``."""
    if find_nats_server() is None:
        raise DrillError(
            f"bus: nats runs the drill on a private nats-server, but {NOT_INSTALLED}; install "
            "nats-server (2.9 or later, e.g. apt-get install nats-server) or put it on PATH"
        )
    return NatsServer(tmp / "nats")


def _nats_bus(url: str, dlq: MemoryDeadLetterStore, name: str) -> NatsBus:
    try:
        from govbus.bus.nats import NatsBus
    except ImportError as exc:
        raise DrillError(
            f"bus: nats needs the nats extra (pip install 'govbus[nats]'): {exc}"
        ) from None
    # Dead letters stay in memory, where the evidence reads them; a delivery lost with the
    # server's connection comes back after ack_wait, well inside a request's timeout.
    return NatsBus(url, dead_letters=dlq, name=f"govbus-drill-{name}", **_NATS_OPTIONS)


def _bus_evidence(
    bus: NatsBus, records: list[AuditRecord], restarts: list[BrokerRestarts]
) -> dict[str, Any]:
    done = [r for restarter in restarts for r in restarter.restarts]
    return {
        "kind": "nats",
        "restarts": done,
        "publish_timeout_s": bus.publish_timeout,
        "publishes_failed": sum(
            1 for r in records if r.kind == "failure" and r.outcome == "bus_unavailable"
        ),
        "duplicates_dropped_by_server": bus.duplicates,
        "duplicate_deliveries": sum(
            1 for r in records if r.kind == "delivery" and r.outcome == "duplicate"
        ),
        "abandoned_at_close": bus.abandoned,
    }


def _install(
    app: App, drill: Drill, triggers: list[Trigger], off: frozenset[str]
) -> dict[str, FaultyAgent]:
    """Apply the drill's settings and faults to ``app``, with the mechanisms in ``off``
    switched off. Returns every agent's counting wrapper."""
    spec = drill.spec
    names = {agent.card.name for agent in app.registry}
    for trigger in triggers:
        agent = trigger.fault.agent
        if agent is not None and agent not in names:
            raise DrillError(
                f"fault {trigger.fault.kind} names agent {agent!r}, which the app does not have "
                f"(agents: {', '.join(sorted(names))})"
            )
    for agent in spec.settings.agents:
        if agent not in names:
            raise DrillError(f"settings name agent {agent!r}, which the app does not have")

    if spec.settings.breaker_threshold is not None:
        app.breaker_threshold = spec.settings.breaker_threshold
    if spec.settings.breaker_recovery_s is not None:
        app.breaker_recovery = spec.settings.breaker_recovery_s
    if "breaker" in off:
        app.breaker_threshold = 1_000_000_000
    if "dlq" in off:
        app.dead_letter = False
    if "idempotency" in off:
        app.idempotency = ForgetfulIdempotency()

    for trigger in triggers:
        fault = trigger.fault
        if fault.kind == "budget_exhausted" and "budget" not in off:
            assert fault.agent is not None
            app.budgets[fault.agent] = Budget(fault.limit, fault.window_s, unit="calls")
            app.on_budget_exhausted = fault.on_exhausted
        if fault.kind in ("llm_error", "llm_timeout"):
            name = fault.model or _only_model(app)
            app.wrap_model(name, functools.partial(FaultyModel, trigger=trigger))
    if "retry" in off:
        app.model_retries = False

    pool = asyncio.Semaphore(_pool_size(app, triggers))
    wrapped: dict[str, FaultyAgent] = {}
    for name in sorted(names):
        card = app.registry.get(name).card
        update: dict[str, Any] = {
            k: v
            for k, v in spec.settings.agents.get(name, AgentSettings()).model_dump().items()
            if v is not None
        }
        if "fallback" in off:
            update["fallback"] = None
        if "deadline" in off:
            update["timeout"] = _LOST_AGENT_TIMEOUT
        mine = [
            t
            for t in triggers
            if t.fault.agent == name
            and t.fault.kind in AGENT_FAULTS
            and t.fault.kind != "budget_exhausted"
        ]

        faulty = FaultyAgent(app.registry.get(name), mine, card=card.model_copy(update=update))
        wrapped[name] = faulty
        shared: Agent = SharedPool(faulty, pool) if "bulkhead" in off else faulty
        app.wrap_agent(name, functools.partial(_instead, shared))
    return wrapped


async def _catch_up(spool: SpoolingAuditStore) -> None:
    """Give the recovered audit store the spooled records (replay passes, as the spool's own
    background task would make them), then flush."""
    deadline = time.monotonic() + _SPOOL_CATCH_UP
    while not await spool.replay():
        if time.monotonic() > deadline:
            raise DrillError(
                f"the audit store did not take the {spool.spooled} spooled records back within "
                f"{_SPOOL_CATCH_UP:.0f}s"
            )
        await asyncio.sleep(_SPOOL_POLL)
    await spool.flush()


def _instead(replacement: Agent, _original: Agent) -> Agent:
    return replacement


def _pool_size(app: App, triggers: list[Trigger]) -> int:
    """The shared pool that stands in for bulkheads switched off: as many workers as the slow
    agent has slots (a pool sized for one agent, shared by all)."""
    for trigger in triggers:
        if trigger.fault.kind == "agent_slow" and trigger.fault.agent is not None:
            return app.registry.get(trigger.fault.agent).card.concurrency
    return _DEFAULT_POOL


def _only_model(app: App) -> str:
    models = sorted(app.models)
    if len(models) != 1:
        raise DrillError(
            "an llm fault must name its 'model' when the app has "
            f"{len(models)} models ({', '.join(models) or 'none'})"
        )
    return models[0]


def _message(drill: Drill, index: int, item: DrillMessage, n: int) -> Message:
    actor = item.actor
    if item.vary_subject and actor is not None:
        actor = {**actor, "subject": f"{actor.get('subject', 'user')}-{n + 1}"}
    fields: dict[str, Any] = {
        "type": item.type,
        "from": item.sender,
        "to": item.to,
        "payload": item.payload,
        "metadata": item.metadata,
        "actor": actor,
    }
    if item.classification is not None:
        fields["classification"] = item.classification
    try:
        return Message.from_dict(fields)
    except EnvelopeError as exc:
        raise DrillError(f"{drill.source}: spec.messages.{index}: {exc}") from None


# -- evidence and expectations ------------------------------------------------------------------


def _evidence(
    sent: list[_Sent],
    records: list[AuditRecord],
    letters: list[Any],
    alerts: Counter[str],
    wrapped: dict[str, FaultyAgent],
    triggers: list[Trigger],
    spool: SpoolingAuditStore | None,
) -> dict[str, Any]:
    latencies = sorted(s.latency_ms for s in sent)
    fallbacks = Counter(r.outcome for r in records if r.kind == "fallback")
    evidence: dict[str, Any] = {
        "messages": len(sent),
        "outcomes": dict(Counter(s.outcome for s in sent)),
        "fallbacks": dict(fallbacks),
        "dead_letters": len(letters),
        "handled": {name: a.entered for name, a in sorted(wrapped.items()) if a.entered},
        "alerts": dict(alerts),
        "audit_records": len(records),
        "faults_injected": {t.fault.kind: _hits(t, alerts) for t in triggers},
        "latency_ms": {
            "p50": round(latencies[len(latencies) // 2], 1) if latencies else None,
            "max": round(latencies[-1], 1) if latencies else None,
        },
    }
    if spool is not None and spool.spooled_total:
        evidence["spool"] = {"spooled": spool.spooled_total, "replayed": spool.replayed_total}
    return evidence


def _hits(trigger: Trigger, alerts: Counter[str]) -> int:
    if trigger.fault.kind == "budget_exhausted":
        return alerts["budget_exhausted"]
    return trigger.hits


def _checks(
    drill: Drill,
    sent: list[_Sent],
    records: list[AuditRecord],
    dead_letters: int,
    alerts: Counter[str],
    wrapped: dict[str, FaultyAgent],
    triggers: list[Trigger],
) -> list[Check]:
    expect = drill.spec.expect
    checks = [
        Check(f"fault {t.fault.kind} injected", _hits(t, alerts) > 0, ">= 1", _hits(t, alerts))
        for t in triggers
    ]
    if expect.outcomes is not None:
        seen = Counter(s.outcome for s in sent)
        for outcome, bound in expect.outcomes.items():
            checks.append(_count_check(f"outcomes.{outcome}", seen[outcome], bound))
    if expect.fallback_fired is not None:
        causes = Counter(r.outcome for r in records if r.kind == "fallback")
        fired = expect.fallback_fired
        if isinstance(fired, bool):
            ok = (sum(causes.values()) > 0) == fired
        else:
            ok = bool(causes) and set(causes) == {fired}
        checks.append(Check("fallback_fired", ok, fired, dict(causes) or False))
    if expect.reply is not None:
        bad = [s for s in sent if not _reply_matches(s.reply, expect.reply)]
        actual = "all match" if not bad else _reply_summary(bad[0].reply) + f" ({len(bad)} differ)"
        checks.append(
            Check("reply", not bad, expect.reply.model_dump(exclude_defaults=True), actual)
        )
    for entry in expect.audit_contains:
        n = sum(1 for r in records if _record_matches(r, entry))
        label = "audit_contains " + " ".join(
            f"{k}={v}"
            for k, v in entry.model_dump(exclude_defaults=True).items()
            if k not in ("count", "min")
        )
        if entry.count is not None:
            checks.append(Check(label, n == entry.count, entry.count, n))
        else:
            checks.append(Check(label, n >= entry.min, f">= {entry.min}", n))
    if expect.dlq_count is not None:
        checks.append(Check("dlq_count", dead_letters == expect.dlq_count, expect.dlq_count,
                            dead_letters))  # fmt: skip
    if expect.delivered_exactly is not None:
        for agent, n in expect.delivered_exactly.items():
            got = wrapped[agent].entered if agent in wrapped else None
            checks.append(Check(f"delivered_exactly.{agent}", got == n, n, got))
    if expect.within_ms is not None:
        worst = max((s.latency_ms for s in sent), default=0.0)
        checks.append(
            Check("within_ms", worst <= expect.within_ms, expect.within_ms, round(worst, 1))
        )
    for index, item in enumerate(drill.spec.messages):
        if item.within_ms is not None:
            worst = max((s.latency_ms for s in sent if s.spec == index), default=0.0)
            checks.append(
                Check(f"messages.{index}.within_ms", worst <= item.within_ms, item.within_ms,
                      round(worst, 1))
            )  # fmt: skip
    if expect.alerts is not None:
        for kind in expect.alerts:
            checks.append(Check(f"alerts.{kind}", alerts[kind] > 0, ">= 1", alerts[kind]))
    if expect.no_loss:
        checks.append(_no_loss(drill, sent, records))
    return checks


def _count_check(name: str, value: int, want: int | Bound) -> Check:
    if isinstance(want, int):
        return Check(name, value == want, want, value)
    low = want.min if want.min is not None else 0
    high = want.max if want.max is not None else math.inf
    shown = f"{low}..{'' if high == math.inf else high}"
    return Check(name, low <= value <= high, shown, value)


def _reply_matches(reply: Message, want: Any) -> bool:
    if want.type is not None and reply.type != want.type:
        return False
    for key, value in want.metadata.items():
        if reply.metadata.get(key) != value:
            return False
    return all(reply.payload.get(k) == v for k, v in want.payload.items())


def _reply_summary(reply: Message) -> str:
    cause = reply.metadata.get(FALLBACK_CAUSE)
    code = reply.payload.get("code")
    return (
        f"{reply.type}"
        + (f" fallback_cause={cause}" if cause else "")
        + (f" code={code}" if code else "")
    )


def _record_matches(record: AuditRecord, want: Any) -> bool:
    return (
        record.kind == want.kind
        and (want.outcome is None or record.outcome == want.outcome)
        and (want.recipient is None or record.recipient == want.recipient)
        and (want.agent is None or record.data.get("agent") == want.agent)
    )


def _no_loss(drill: Drill, sent: list[_Sent], records: list[AuditRecord]) -> Check:
    """Every message sent has exactly one answer (not a request timeout) and its decision in
    the audit log."""
    total = sum(m.repeat for m in drill.spec.messages)
    timeouts = sum(1 for s in sent if s.reply.payload.get("code") == "request_timeout")
    decided = {r.message_id for r in records if r.kind == "decision"}
    undecided = sum(1 for s in sent if s.message_id not in decided)
    answered = len({s.message_id for s in sent})
    ok = answered == total == len(sent) and timeouts == 0 and undecided == 0
    actual = {
        "sent": total,
        "answered": answered,
        "request_timeouts": timeouts,
        "without_audit_decision": undecided,
    }
    return Check("no_loss", ok, {"sent": total, "answered": total}, actual)
