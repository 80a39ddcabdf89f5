"""Bulkheads: bounded concurrency and queue per agent; one hanging agent starves no other."""

from __future__ import annotations

import asyncio

import pytest

from govbus.errors import BulkheadFullError, GovbusError
from govbus.resilience import Bulkhead


async def hold(bulkhead: Bulkhead, until: asyncio.Event) -> None:
    async with bulkhead:
        await until.wait()


async def settle() -> None:
    """Let every ready task run up to its next wait."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_hanging_holder_in_one_bulkhead_does_not_delay_another() -> None:
    slow, fast = Bulkhead(1, name="slow_agent"), Bulkhead(1, name="fast_agent")
    never = asyncio.Event()
    hanging = asyncio.create_task(hold(slow, never))
    await settle()
    assert slow.active == 1
    async with asyncio.timeout(5):  # a guard against a hang, not a timing goal
        for _ in range(100):
            acquiring = asyncio.ensure_future(fast.acquire())
            await asyncio.sleep(0)
            assert acquiring.done()  # entered in the same turn: nothing waited on "slow"
            fast.release()
    with pytest.raises(BulkheadFullError):
        await slow.acquire()  # the hanging agent's own calls are refused, not queued forever
    hanging.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hanging
    assert slow.active == 0


async def test_when_slots_and_queue_are_full_callers_are_refused() -> None:
    bulkhead = Bulkhead(1, max_queue=2, name="advisor")
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(bulkhead, release)) for _ in range(3)]
    await settle()
    assert (bulkhead.active, bulkhead.waiting) == (1, 2)
    with pytest.raises(BulkheadFullError, match="advisor") as info:
        await bulkhead.acquire()
    assert isinstance(info.value, GovbusError)
    assert info.value.code == "bulkhead_full"
    assert info.value.retryable is True
    release.set()
    await asyncio.gather(*tasks)
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_without_a_queue_a_full_bulkhead_refuses_at_once() -> None:
    bulkhead = Bulkhead(2)
    release = asyncio.Event()
    tasks = [asyncio.create_task(hold(bulkhead, release)) for _ in range(2)]
    await settle()
    with pytest.raises(BulkheadFullError):
        async with bulkhead:
            pass
    release.set()
    await asyncio.gather(*tasks)


async def test_queued_callers_get_slots_in_arrival_order() -> None:
    bulkhead = Bulkhead(1, max_queue=10)
    order: list[int] = []
    await bulkhead.acquire()

    async def worker(i: int) -> None:
        async with bulkhead:
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker(i)) for i in range(5)]
    await settle()
    assert bulkhead.waiting == 5
    bulkhead.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_concurrency_never_exceeds_the_limit() -> None:
    bulkhead = Bulkhead(3, max_queue=100)
    running = peak = 0

    async def worker() -> None:
        nonlocal running, peak
        async with bulkhead:
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0)
            running -= 1

    await asyncio.gather(*(worker() for _ in range(50)))
    assert peak == 3
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    await bulkhead.acquire()
    waiter = asyncio.create_task(bulkhead.acquire())
    await settle()
    assert bulkhead.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.active == 0


async def test_a_slot_handed_to_a_waiter_cancelled_in_the_same_moment_is_passed_on() -> None:
    bulkhead = Bulkhead(1, max_queue=2)
    await bulkhead.acquire()
    first = asyncio.create_task(bulkhead.acquire())
    second = asyncio.create_task(bulkhead.acquire())
    await settle()
    bulkhead.release()  # hands the slot to "first" ...
    first.cancel()  # ... which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, timeout=5)  # a guard against a leaked slot, not a timing goal
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    assert bulkhead.active == 0


async def test_a_waiter_cancelled_a_moment_ago_does_not_take_up_queue_room() -> None:
    bulkhead = Bulkhead(1, max_queue=1)
    await bulkhead.acquire()
    waiter = asyncio.create_task(bulkhead.acquire())
    await settle()
    newcomer = asyncio.create_task(bulkhead.acquire())  # will run before the waiter's task
    waiter.cancel()  # so the waiter is still in the queue when the newcomer arrives
    assert bulkhead.waiting == 0
    await settle()
    assert not newcomer.done()  # queued, not refused
    bulkhead.release()
    await asyncio.wait_for(newcomer, timeout=5)
    assert waiter.cancelled()
    assert (bulkhead.active, bulkhead.waiting) == (1, 0)


async def test_the_slot_is_released_when_the_body_raises() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(RuntimeError, match="boom"):
        async with bulkhead:
            raise RuntimeError("boom")
    assert bulkhead.active == 0


def test_releasing_more_than_acquired_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="more often"):
        Bulkhead(1).release()


@pytest.mark.parametrize(("limit", "queue"), [(0, 0), (1, -1)])
def test_invalid_settings_are_refused(limit: int, queue: int) -> None:
    with pytest.raises(ValueError, match="must"):
        Bulkhead(limit, queue)
