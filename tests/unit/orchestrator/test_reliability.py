"""Reliability: 10,000 requests with injected exceptions (5%) and timeouts (2%); every request
ends with exactly one outcome, none is lost, and the audit log accounts for every message."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from govbus.audit import MemoryAuditStore
from govbus.envelope import DEGRADED, Actor, Message
from govbus.orchestrator import DENIED, FAILED, App
from govbus.registry import Context

from .conftest import policy, records

N = 10_000
ADVISOR = Actor(subject="asha", roles=("advisor",))
CUSTOMER = Actor(subject="cust", roles=("customer",))


def fault(i: int) -> str:
    """Deterministic faults by request number: 5% exceptions, 2% timeouts, 1% denied, and 0.5%
    whose fallback fails too (so every outcome kind occurs)."""
    if i % 200 == 7:
        return "both_fail"
    if i % 100 == 3:
        return "denied"
    if i % 50 == 1:
        return "timeout"
    if i % 20 == 0:
        return "exception"
    return "ok"


@pytest.mark.slow
async def test_ten_thousand_requests_end_with_exactly_one_outcome_each() -> None:
    audit = MemoryAuditStore()
    app = App("reliability", policy=policy(), audit=audit, default_timeout=10.0)
    app.orchestrator.breaker_threshold = N  # this test is about outcomes, not about breakers

    @app.agent("advisor", handles="portfolio.advise", timeout=0.05, fallback="snapshot")
    async def advisor(msg: Message, ctx: Context) -> Message:
        kind = msg.payload["fault"]
        if kind == "timeout":
            await asyncio.sleep(1)
        if kind in ("exception", "both_fail"):
            raise RuntimeError("injected")
        return ctx.reply("portfolio.advice", {"n": msg.payload["n"]})

    @app.agent("snapshot", handles="portfolio.snapshot", timeout=1.0)
    async def snapshot(msg: Message, ctx: Context) -> Message:
        if msg.payload["fault"] == "both_fail":
            raise RuntimeError("injected in the fallback too")
        return ctx.reply("portfolio.advice", {"n": msg.payload["n"]})

    slots = asyncio.Semaphore(200)

    async def one(i: int) -> tuple[int, str, str]:
        kind = fault(i)
        message = Message(
            type="portfolio.advise",
            sender="web",
            actor=CUSTOMER if kind == "denied" else ADVISOR,
            payload={"n": i, "fault": kind},
        )
        async with slots:
            reply = await app.request(message, timeout=10.0)
        if reply.type == DENIED:
            return i, kind, "denied"
        if reply.type == FAILED:
            return i, kind, "failed"
        assert reply.payload["n"] == i  # the answer belongs to this request
        return i, kind, "degraded" if reply.metadata.get(DEGRADED) == "true" else "ok"

    started = time.monotonic()
    try:
        outcomes = await asyncio.gather(*(one(i) for i in range(N)))
    finally:
        await app.close()
    elapsed = time.monotonic() - started

    assert len(outcomes) == N and len({i for i, _, _ in outcomes}) == N  # one outcome each
    expected = {"ok": "ok", "exception": "degraded", "timeout": "degraded", "denied": "denied",
                "both_fail": "failed"}  # fmt: skip
    wrong = [(i, kind, got) for i, kind, got in outcomes if expected[kind] != got]
    assert not wrong, wrong[:5]
    totals = Counter(got for _, _, got in outcomes)
    print(f"\n{N} requests in {elapsed:.1f}s: {dict(totals)}")  # reported in the closing note

    # The audit log accounts for every request: each has a decision, and exactly one terminal
    # record (its delivery answered, its fallback fired, it was denied, or it failed).
    log = await records(audit)
    assert (await audit.verify()).ok
    requests = {
        r.message_id for r in log if r.kind == "decision" and r.msg_type == "portfolio.advise"
    }
    assert len(requests) == N
    failures = Counter(r.message_id for r in log if r.kind == "failure")
    fallbacks = Counter(r.message_id for r in log if r.kind == "fallback")
    assert max(failures.values()) == 1 and max(fallbacks.values()) == 1  # never twice
    assert sum(failures.values()) == totals["failed"]
    assert sum(fallbacks.values()) == totals["degraded"] + totals["failed"]
