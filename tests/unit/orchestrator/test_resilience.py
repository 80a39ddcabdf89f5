"""Resilience on the dispatch path: circuit breakers, the kill switch, duplicate deliveries."""

from __future__ import annotations

import asyncio

import pytest

from govbus.audit import MemoryAuditStore
from govbus.envelope import FALLBACK_CAUSE, Message
from govbus.errors import UnknownAgentError
from govbus.orchestrator import FAILED, Alert, App
from govbus.registry import Context
from govbus.resilience import BreakerState

from .conftest import records
from .test_dispatch import ask


def add_flaky(app: App, outcomes: list[bool]) -> list[Message]:
    """An advisor that fails or succeeds per ``outcomes`` (then succeeds), with a fallback."""
    seen: list[Message] = []

    @app.agent("advisor", handles="portfolio.advise", timeout=1.0, fallback="snapshot")
    async def advisor(msg: Message, ctx: Context) -> Message:
        seen.append(msg)
        if outcomes and not outcomes.pop(0):
            raise RuntimeError("provider down")
        return ctx.reply("portfolio.advice", {"text": "live"})

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"text": "snapshot"})

    return seen


async def test_the_breaker_opens_and_the_fallback_answers_at_once(
    app: App, audit: MemoryAuditStore
) -> None:
    alerts: list[Alert] = []
    app.alert = alerts.append
    app.orchestrator.breaker_threshold = 3
    seen = add_flaky(app, [False, False, False])
    for _ in range(3):
        assert (await app.request(ask())).metadata[FALLBACK_CAUSE] == "exception"
    reply = await app.request(ask())
    assert reply.payload == {"text": "snapshot"}
    assert reply.metadata[FALLBACK_CAUSE] == "circuit_open"
    assert len(seen) == 3  # the open breaker kept the fourth request from the agent
    assert app.orchestrator.breakers["advisor"].state is BreakerState.OPEN
    await asyncio.sleep(0)  # the alert runs as its own task
    assert [a.kind for a in alerts].count("breaker_open") == 1
    admin = [(r.outcome, r.data.get("agent")) for r in await records(audit) if r.kind == "admin"]
    assert ("breaker_open", "advisor") in admin


async def test_a_half_open_breaker_closes_after_a_good_probe(app: App) -> None:
    app.orchestrator.breaker_threshold = 1
    app.orchestrator.breaker_recovery = 0.0
    add_flaky(app, [False])
    await app.request(ask())  # fails: opens (recovery 0: half-open at once)
    assert (await app.request(ask())).payload == {"text": "live"}  # the probe succeeds
    assert app.orchestrator.breakers["advisor"].state is BreakerState.CLOSED


async def test_a_paused_agent_goes_to_its_fallback_and_pauses_are_audited(
    app: App, audit: MemoryAuditStore
) -> None:
    seen = add_flaky(app, [])
    await app.start()
    app.pause("advisor", by="ops@bank", reason="wrong answers")
    reply = await app.request(ask())
    assert reply.metadata[FALLBACK_CAUSE] == "agent_paused" and seen == []
    app.resume("advisor", by="ops@bank")
    assert (await app.request(ask())).payload == {"text": "live"}
    admin = [
        (r.outcome, r.data.get("agent"), r.data.get("by"))
        for r in await records(audit)
        if r.kind == "admin" and r.outcome in ("pause", "resume")
    ]
    assert admin == [("pause", "advisor", "ops@bank"), ("resume", "advisor", "ops@bank")]
    with pytest.raises(UnknownAgentError):
        app.pause("nobody", by="ops@bank")


async def test_a_held_agent_gets_its_messages_after_the_resume(app: App) -> None:
    seen = add_flaky(app, [])
    await app.start()
    app.pause("advisor", by="ops@bank", mode="hold")
    pending = asyncio.create_task(app.request(ask(), timeout=5.0))
    await asyncio.sleep(0.05)
    assert not pending.done() and seen == []
    app.resume("advisor", by="ops@bank")
    assert (await pending).payload == {"text": "live"}


async def test_a_duplicate_delivery_is_handled_once(app: App, audit: MemoryAuditStore) -> None:
    seen = add_flaky(app, [])
    await app.start()
    message = ask()
    await app.publish(message)
    await app.publish(message)  # the same id again (a redelivery after a lost ack, say)
    await asyncio.sleep(0.05)
    assert len(seen) == 1
    duplicates = [r for r in await records(audit) if r.outcome == "duplicate"]
    assert [(r.message_id, r.recipient) for r in duplicates] == [(message.id, "advisor")]


async def test_a_retried_delivery_is_not_taken_for_a_duplicate(audit: MemoryAuditStore) -> None:
    from .conftest import policy

    app = App("retry", policy=policy(), audit=audit)
    attempts: list[int] = []

    @app.agent("advisor", handles="portfolio.advise", timeout=0.05, max_attempts=2)
    async def advisor(msg: Message, ctx: Context) -> Message:
        attempts.append(msg.attempt)
        if len(attempts) == 1:
            await asyncio.sleep(1)  # times out: retryable, so the bus redelivers
        return ctx.reply("portfolio.advice", {"text": "second try"})

    try:
        reply = await app.request(ask(), timeout=5.0)
    finally:
        await app.close()
    assert reply.type != FAILED and reply.payload == {"text": "second try"}
    assert len(attempts) == 2


@pytest.mark.parametrize(
    ("mode", "answer"),
    [("fallback", "snapshot"), ("deny", FAILED), ("alert", "live")],
)
async def test_a_spent_budget_falls_back_denies_or_only_alerts(
    audit: MemoryAuditStore, mode: str, answer: str
) -> None:
    from govbus.resilience import Budget

    from .conftest import policy

    alerts: list[Alert] = []
    app = App(
        "budget",
        policy=policy(),
        audit=audit,
        alert=alerts.append,
        budgets={"advisor": Budget(1, 3600.0)},
        on_budget_exhausted=mode,  # type: ignore[arg-type]
    )
    seen = add_flaky(app, [])
    try:
        assert (await app.request(ask())).payload == {"text": "live"}
        reply = await app.request(ask())
    finally:
        await app.close()
    got = reply.type if reply.type == FAILED else reply.payload["text"]
    assert got == answer
    assert len(seen) == (2 if mode == "alert" else 1)
    assert [a.kind for a in alerts if a.kind == "budget_exhausted"] == ["budget_exhausted"]
    spent = [r for r in await records(audit) if r.outcome == "budget_exhausted"]
    assert spent and spent[0].data["mode"] == mode


async def test_the_hop_deadline_bounds_a_model_call_inside_the_handler(app: App) -> None:
    """The model has no timeout of its own; the hop's end (the agent's 0.2 s timeout, sooner
    than the request's deadline) still stops it, with the model's own typed error."""
    from govbus.models import ChatRequest, ModelTimeoutError, Reply, ScriptedModel

    model = ScriptedModel(default=Reply("too late", delay=30.0))
    seen: list[str] = []

    @app.agent("advisor", handles="portfolio.advise", timeout=0.2, fallback="snapshot")
    async def advisor(msg: Message, ctx: Context) -> Message:
        try:
            answer = await model.complete(ChatRequest.of("advise"))
        except ModelTimeoutError as exc:
            seen.append(exc.code)
            raise
        return ctx.reply("portfolio.advice", {"text": answer.content})

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"text": "snapshot"})

    started = asyncio.get_running_loop().time()
    reply = await app.request(ask(), timeout=5.0)
    elapsed = asyncio.get_running_loop().time() - started
    # The scripted model saw the hop's deadline and gave up with its own typed error before the
    # watchdog had to cancel the handler; the fallback answered.
    assert seen == ["model_timeout"]
    assert reply.payload == {"text": "snapshot"}
    assert reply.metadata[FALLBACK_CAUSE] == "model_timeout"
    assert elapsed < 1.0


async def test_a_hanging_agent_does_not_slow_the_others(app: App) -> None:
    """Bulkheads: each agent has its own queue and concurrency limit, so an agent whose calls
    all hang until their timeout leaves another agent's latency where it was."""
    release = asyncio.Event()

    @app.agent("stuck", handles="stuck.work", timeout=5.0, concurrency=4)
    async def stuck(msg: Message, ctx: Context) -> Message:
        await release.wait()
        return ctx.reply("stuck.done", {})

    @app.agent("quick", handles="quick.work", concurrency=4)
    async def quick(msg: Message, ctx: Context) -> Message:
        await asyncio.sleep(0.002)
        return ctx.reply("quick.done", {})

    async def quick_latencies(n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = asyncio.get_running_loop().time()
            reply = await app.request(Message(type="quick.work", sender="web"), timeout=2.0)
            assert reply.type == "quick.done"
            out.append(asyncio.get_running_loop().time() - t0)
        return sorted(out)

    await app.start()
    before = await quick_latencies(40)
    # Far more work for the stuck agent than its 4 slots: 4 hang, the rest queue behind them.
    hanging = [
        asyncio.create_task(app.request(Message(type="stuck.work", sender="web"), timeout=10.0))
        for _ in range(50)
    ]
    await asyncio.sleep(0.05)
    during = await quick_latencies(40)
    release.set()
    await asyncio.gather(*hanging)
    p50_before, p50_during = before[len(before) // 2], during[len(during) // 2]
    # Same order of latency (the margin absorbs a noisy shared machine, not a starved agent:
    # starved, the quick agent would wait for the stuck one's 5 s timeouts).
    assert p50_during < max(3 * p50_before, p50_before + 0.02), (p50_before, p50_during)
    assert during[-1] < 0.5
