"""Deadlines: hop budgets and the watchdog that enforces per-hop timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest

from govbus.envelope import Message
from govbus.resilience import Watchdog, hop_budget

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_hop_budget_is_the_timeout_without_a_deadline() -> None:
    assert hop_budget(Message(type="a.b", sender="x"), 2.0, NOW) == 2.0


def test_hop_budget_is_cut_short_by_the_deadline() -> None:
    msg = Message(type="a.b", sender="x", deadline=NOW + timedelta(seconds=0.5))
    assert hop_budget(msg, 2.0, NOW) == 0.5
    assert hop_budget(msg, 2.0, NOW + timedelta(seconds=1)) < 0


async def test_guard_that_never_fires_leaves_the_work_alone() -> None:
    dog = Watchdog(resolution=0.001)
    guard = dog.arm(1.0)
    await asyncio.sleep(0.01)
    assert guard.disarm() is False
    assert not guard.fired
    dog.close()


async def test_overrunning_work_is_cancelled_and_reported_as_timeout() -> None:
    dog = Watchdog(resolution=0.001)
    guard = dog.arm(0.02)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert guard.disarm() is True
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the watchdog's cancellation was withdrawn
    await asyncio.sleep(0)  # and the task is not cancelled again afterwards
    dog.close()


async def test_a_foreign_cancellation_is_not_mistaken_for_a_timeout() -> None:
    """Cancelled by someone else before the budget ran out: disarm says "not mine"."""
    dog = Watchdog(resolution=0.001)
    task = asyncio.current_task()
    assert task is not None
    guard = dog.arm(5.0)
    asyncio.get_running_loop().call_later(0.01, task.cancel)  # e.g. the bus worker stopping
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)
    assert guard.disarm() is False
    task.uncancel()
    dog.close()


async def test_timeout_plus_foreign_cancellation_still_propagates() -> None:
    """Both the watchdog and someone else cancelled: the caller must re-raise."""
    dog = Watchdog(resolution=0.001)
    task = asyncio.current_task()
    assert task is not None
    guard = dog.arm(0.005)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(5)  # the watchdog's cancellation
    task.cancel()  # a second, foreign cancellation arrives before the caller disarms
    assert guard.disarm() is False
    with pytest.raises(asyncio.CancelledError):
        await asyncio.sleep(0)  # the foreign one is still delivered
    task.uncancel()
    dog.close()


async def test_swallowed_cancellation_still_counts_as_timeout() -> None:
    dog = Watchdog(resolution=0.001)
    guard = dog.arm(0.01)
    with contextlib.suppress(asyncio.CancelledError):  # a badly behaved handler
        await asyncio.sleep(5)
    assert guard.disarm() is True
    dog.close()


async def test_many_guards_fire_independently() -> None:
    dog = Watchdog(resolution=0.001)
    outcomes: dict[str, bool] = {}

    async def hop(name: str, budget: float, work: float) -> None:
        guard = dog.arm(budget)
        try:
            await asyncio.sleep(work)
        except asyncio.CancelledError:
            outcomes[name] = guard.disarm()
            return
        outcomes[name] = guard.disarm()

    await asyncio.gather(hop("fast", 1.0, 0.001), hop("slow", 0.02, 5), hop("ok", 1.0, 0.03))
    assert outcomes == {"fast": False, "slow": True, "ok": False}
    dog.close()


def test_deadline_scopes_nest_and_only_shorten() -> None:
    from govbus.resilience import deadline_scope, hop_deadline, time_left

    assert hop_deadline() is None and time_left() is None
    now = time.monotonic()
    with deadline_scope(now + 10):
        with deadline_scope(now + 20):  # cannot extend the outer hop
            assert hop_deadline() == now + 10
        with deadline_scope(now + 1):
            assert hop_deadline() == now + 1
            left = time_left()
            assert left is not None and 0 < left <= 1
        assert hop_deadline() == now + 10
    assert hop_deadline() is None
    with deadline_scope(now - 5):
        assert time_left() == 0.0
