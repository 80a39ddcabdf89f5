"""Idempotency: remember message ids so a duplicate delivery is handled once.

:class:`IdempotencyStore` is the protocol the orchestrator uses; :class:`MemoryIdempotencyStore`
is the in-process implementation. A cross-process store (NATS key-value, a database) implements
the same two methods, with ``seen`` as one atomic operation on the server side.

Typical use on the receiving side::

    if await store.seen(message.id, lease=30.0):
        return                      # a duplicate: already handled (or being handled)
    try:
        await handle(message)
    except Exception:
        await store.forget(message.id)  # let a redelivery try again
        raise
    await store.done(message.id)

With a ``lease``, ``seen`` *claims* the key for that long: a duplicate arriving while the claim
holds is a duplicate, but once the claim has lapsed without ``done`` (the process handling it
died, ``kill -9``), the next delivery takes the key over and is handled. Without ``done`` and
without a lease, the first sighting counts as handled.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where handled keys (message ids) are remembered."""

    async def seen(self, key: str, *, lease: float | None = None) -> bool:
        """Record ``key`` and say whether it was already recorded, as one atomic step: of many
        concurrent calls with a new key, exactly one gets False. With ``lease`` (seconds), the
        record is a claim: once it lapses without :meth:`done`, ``seen`` takes it over (False)."""
        ...

    async def done(self, key: str) -> None:
        """Mark ``key`` handled: from now on ``seen`` returns True until it expires."""
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
        # key -> end of its claim, for keys seen with a lease and not yet done.
        self._claims: dict[str, float] = {}

    def __len__(self) -> int:
        """Keys held, expired ones not yet purged included."""
        return len(self._expiry)

    async def seen(self, key: str, *, lease: float | None = None) -> bool:
        """Record ``key``; True if it was already recorded and not yet expired or evicted (and,
        for a claim, not lapsed)."""
        now = self._clock()
        self._purge(now)
        if key in self._expiry:
            claim = self._claims.get(key)
            if claim is None or claim > now:
                return True
        else:
            self._expiry[key] = now + self.ttl
            while len(self._expiry) > self.max_keys:
                evicted, _ = self._expiry.popitem(last=False)
                self._claims.pop(evicted, None)
        if lease is not None:
            self._claims[key] = now + lease
        else:
            self._claims.pop(key, None)
        return False

    async def done(self, key: str) -> None:
        """Mark ``key`` handled (its claim, if any, becomes permanent until it expires)."""
        self._claims.pop(key, None)

    async def forget(self, key: str) -> None:
        """Drop ``key`` (no error if absent)."""
        self._expiry.pop(key, None)
        self._claims.pop(key, None)

    def _purge(self, now: float) -> None:
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]
            self._claims.pop(key, None)
