"""Idempotency: remember message ids so a duplicate delivery is handled once.

:class:`IdempotencyStore` is the protocol the orchestrator uses; :class:`MemoryIdempotencyStore`
is the in-process implementation. A cross-process store (NATS key-value, a database) implements
the same two methods, with ``seen`` as one atomic operation on the server side.

Typical use on the receiving side::

    if await store.seen(message.id):
        return                      # a duplicate: already handled (or being handled)
    try:
        await handle(message)
    except Exception:
        await store.forget(message.id)  # let a redelivery try again
        raise
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where handled keys (message ids) are remembered."""

    async def seen(self, key: str) -> bool:
        """Record ``key`` and say whether it was already recorded, as one atomic step: of many
        concurrent calls with a new key, exactly one gets False."""
        ...

    async def forget(self, key: str) -> None:
        """Drop ``key`` (no error if absent), so its next ``seen`` returns False."""
        ...


class MemoryIdempotencyStore:
    """An in-memory :class:`IdempotencyStore` with bounded size and a time to live.

    A key is remembered for ``ttl`` seconds from its first sighting (a duplicate does not extend
    it), and at most ``max_keys`` keys are kept: recording one more evicts the oldest. So a
    duplicate is detected if it arrives within ``ttl`` and before ``max_keys`` newer keys; size
    both to cover the bus's redelivery horizon. ``seen`` never awaits, so it is atomic within one
    event loop; not thread-safe.

    Args:
        ttl: seconds a key is remembered; > 0.
        max_keys: the most keys kept; >= 1.
        clock: monotonic seconds; inject a fake one in tests.

    Example:
        >>> import asyncio
        >>> store = MemoryIdempotencyStore(ttl=600.0, max_keys=10_000)
        >>> async def deliver_twice() -> list[bool]:
        ...     return [await store.seen("01J9ZQ"), await store.seen("01J9ZQ")]
        >>> asyncio.run(deliver_twice())
        [False, True]
    """

    def __init__(
        self, ttl: float, max_keys: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        # key -> expiry; insertion order is expiry order, since every key lives exactly ttl.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        """Keys held, expired ones not yet purged included."""
        return len(self._expiry)

    async def seen(self, key: str) -> bool:
        """Record ``key``; True if it was already recorded and not yet expired or evicted."""
        now = self._clock()
        self._purge(now)
        if key in self._expiry:
            return True
        self._expiry[key] = now + self.ttl
        while len(self._expiry) > self.max_keys:
            self._expiry.popitem(last=False)
        return False

    async def forget(self, key: str) -> None:
        """Drop ``key`` (no error if absent)."""
        self._expiry.pop(key, None)

    def _purge(self, now: float) -> None:
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]
