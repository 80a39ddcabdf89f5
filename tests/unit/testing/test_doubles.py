"""The public test doubles work as documented, inside a real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from govbus import App, Message
from govbus.orchestrator import FAILED
from govbus.testing import FakeClock, MemoryAuditStore, RecordingAgent


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock() == clock()
    clock.advance(2.5)
    assert clock() == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=2.5)
    with pytest.raises(ValueError, match="timezone"):
        FakeClock(datetime(2026, 1, 1))


async def test_recording_agent_records_and_replies() -> None:
    store = MemoryAuditStore()
    clock = FakeClock(datetime.now(UTC))
    app = App("t", audit=store, clock=clock)
    agent = RecordingAgent("echo", handles="echo.*")
    app.register(agent)
    async with app:
        reply = await app.request(Message(type="echo.ping", sender="web", payload={"n": 1}))
    assert reply.type == "echo.ping.done"
    assert reply.payload == {"n": 1}
    assert [m.type for m in agent.received] == ["echo.ping"]
    assert all(r.ts == clock() for r in store.stored if r.kind == "decision")


async def test_recording_agent_with_a_custom_response() -> None:
    app = App("t", audit="memory://")

    def explode(msg: Message, ctx: object) -> None:
        raise RuntimeError("boom")

    app.register(RecordingAgent("bad", handles="x.y", respond=explode))
    async with app:
        reply = await app.request(Message(type="x.y", sender="web"))
    assert reply.type == FAILED
