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
    app._alert = alerts.append
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
