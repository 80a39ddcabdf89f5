"""Metrics of the dispatch path, read through the OpenTelemetry SDK's in-memory reader."""

from __future__ import annotations

from pathlib import Path

from govbus.audit import MemoryAuditStore
from govbus.envelope import Actor, Message
from govbus.orchestrator import App
from govbus.registry import Context
from govbus.testing import MetricCapture

from .conftest import policy

ADVISOR = Actor(subject="a-1", roles=("advisor",))
CUSTOMER = Actor(subject="c-1", roles=("customer",))


async def test_counts_denials_by_check_fallbacks_by_cause_and_handler_durations() -> None:
    metrics = MetricCapture()
    app = App("metered", policy=policy(), audit=MemoryAuditStore(), meter_provider=metrics.provider)

    @app.agent("advisor", handles="portfolio.advise", fallback="snapshot", timeout=1.0)
    async def advisor(msg: Message, ctx: Context) -> Message:
        if msg.payload.get("boom"):
            raise RuntimeError("broken")
        return ctx.reply("portfolio.advice", {})

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"stale": True})

    async with app:
        for payload in ({}, {}, {"boom": True}):
            await app.request(Message(type="portfolio.advise", sender="web", actor=ADVISOR,
                                      payload=payload))  # fmt: skip
        await app.request(Message(type="portfolio.advise", sender="web", actor=CUSTOMER))
        assert metrics.values("govbus.messages.denied") == {(("govbus.check", "advisors-only"),): 1}
        assert metrics.values("govbus.fallbacks") == {(("govbus.fallback.cause", "exception"),): 1}
        # four requests, the fallback's reroute, three replies (egress is governed too)
        assert metrics.values("govbus.messages.dispatched") == {(): 8}
        assert metrics.values("govbus.dead_letters") == {(): 1}
        assert metrics.values("govbus.agent.handled") == {
            (("govbus.agent", "advisor"),): 2,
            (("govbus.agent", "snapshot"),): 1,
        }
        durations = metrics.values("govbus.handler.duration")
        assert durations[(("govbus.agent", "advisor"), ("govbus.outcome", "ok"))] == 2
        assert durations[(("govbus.agent", "advisor"), ("govbus.outcome", "exception"))] == 1
        assert metrics.values("govbus.breaker.state") == {
            (("govbus.agent", "advisor"),): 0,
            (("govbus.agent", "snapshot"),): 0,
        }


async def test_without_a_meter_provider_there_are_no_metrics() -> None:
    app = App("plain", policy=policy(), audit=MemoryAuditStore())
    assert app.orchestrator.metrics is None


async def test_the_audit_queue_depth_of_a_sql_store_is_reported(tmp_path: Path) -> None:
    metrics = MetricCapture()
    app = App(
        "metered",
        policy=policy(),
        audit=f"sqlite:///{tmp_path}/audit.db",
        audit_writer="thread",
        meter_provider=metrics.provider,
    )
    async with app:
        depth = metrics.values("govbus.audit.queue_depth")
        assert list(depth) == [()] and isinstance(depth[()], int) and depth[()] >= 0
