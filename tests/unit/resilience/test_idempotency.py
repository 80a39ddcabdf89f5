"""Idempotency store: duplicates detected, keys expire after the TTL, memory stays bounded."""

from __future__ import annotations

import asyncio

import pytest

from govbus.resilience import IdempotencyStore, MemoryIdempotencyStore
from tests.unit.resilience.support import ManualClock


def test_the_memory_store_implements_the_protocol() -> None:
    assert isinstance(MemoryIdempotencyStore(60.0, 10), IdempotencyStore)


async def test_a_key_is_new_once_then_a_duplicate() -> None:
    store = MemoryIdempotencyStore(60.0, 10, clock=ManualClock())
    assert await store.seen("m1") is False
    assert await store.seen("m1") is True
    assert await store.seen("m1") is True
    assert await store.seen("m2") is False


async def test_a_forgotten_key_is_new_again() -> None:
    store = MemoryIdempotencyStore(60.0, 10, clock=ManualClock())
    await store.seen("m1")
    await store.forget("m1")
    await store.forget("never-seen")  # no error
    assert await store.seen("m1") is False


async def test_keys_expire_after_the_ttl() -> None:
    clock = ManualClock()
    store = MemoryIdempotencyStore(10.0, 100, clock=clock)
    await store.seen("m1")
    clock.advance(9.9)
    assert await store.seen("m1") is True
    clock.advance(0.1)
    assert await store.seen("m1") is False


async def test_a_duplicate_does_not_extend_the_ttl() -> None:
    clock = ManualClock()
    store = MemoryIdempotencyStore(10.0, 100, clock=clock)
    await store.seen("m1")
    clock.advance(8)
    assert await store.seen("m1") is True
    clock.advance(2)
    assert await store.seen("m1") is False


async def test_expired_keys_are_purged() -> None:
    clock = ManualClock()
    store = MemoryIdempotencyStore(10.0, 1000, clock=clock)
    for i in range(50):
        await store.seen(f"old-{i}")
    clock.advance(10)
    await store.seen("new")
    assert len(store) == 1


async def test_size_is_bounded_by_evicting_the_oldest_keys() -> None:
    store = MemoryIdempotencyStore(600.0, 3, clock=ManualClock())
    for key in ["a", "b", "c", "d"]:
        await store.seen(key)
    assert len(store) == 3
    assert await store.seen("d") is True
    assert await store.seen("a") is False  # evicted: no longer detected (and now newest again)
    assert len(store) == 3
    for i in range(1000):
        await store.seen(f"k{i}")
    assert len(store) == 3


async def test_of_many_concurrent_deliveries_of_one_id_exactly_one_is_new() -> None:
    store = MemoryIdempotencyStore(60.0, 10_000)
    results = await asyncio.gather(*(store.seen("01J9ZQ") for _ in range(200)))
    assert results.count(False) == 1
    assert results.count(True) == 199


async def test_concurrent_deliveries_of_many_ids_each_handled_once() -> None:
    store = MemoryIdempotencyStore(60.0, 10_000)
    keys = [f"m{i % 50}" for i in range(500)]
    results = await asyncio.gather(*(store.seen(k) for k in keys))
    new = [k for k, dup in zip(keys, results, strict=True) if not dup]
    assert sorted(new) == sorted(set(keys))


@pytest.mark.parametrize(("ttl", "max_keys"), [(0.0, 10), (10.0, 0)])
def test_invalid_settings_are_refused(ttl: float, max_keys: int) -> None:
    with pytest.raises(ValueError, match="must"):
        MemoryIdempotencyStore(ttl, max_keys)


async def test_a_lapsed_claim_is_taken_over_but_a_done_key_is_not() -> None:
    now = [0.0]
    store = MemoryIdempotencyStore(ttl=600.0, max_keys=100, clock=lambda: now[0])
    assert await store.seen("a", lease=10.0) is False  # claimed
    assert await store.seen("a", lease=10.0) is True  # being handled
    now[0] = 11.0  # the claimant died: its claim lapsed
    assert await store.seen("a", lease=10.0) is False  # taken over
    await store.done("a")
    now[0] = 100.0
    assert await store.seen("a", lease=10.0) is True  # handled: a duplicate, for the ttl
    now[0] = 700.0
    assert await store.seen("a", lease=10.0) is False  # expired


async def test_without_a_lease_the_first_sighting_counts() -> None:
    store = MemoryIdempotencyStore(ttl=600.0, max_keys=100)
    assert await store.seen("b") is False
    assert await store.seen("b", lease=0.0) is True
    await store.forget("b")
    assert await store.seen("b") is False
