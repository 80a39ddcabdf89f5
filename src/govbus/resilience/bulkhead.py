"""Bulkheads: a concurrency limit with a bounded queue, one per agent.

Giving each agent its own bulkhead keeps one slow or hanging agent from taking every worker:
it can only fill its own slots and its own queue, after which further calls to it are refused
at once with :class:`~govbus.errors.BulkheadFullError` (retryable), and every other agent is
unaffected.

Example:
    >>> import asyncio
    >>> async def main() -> tuple[int, int]:
    ...     bulkhead = Bulkhead(max_concurrent=2)
    ...     async with bulkhead:
    ...         inside = bulkhead.active
    ...     return inside, bulkhead.active
    >>> asyncio.run(main())
    (1, 0)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType

from govbus.errors import BulkheadFullError


class Bulkhead:
    """At most ``max_concurrent`` holders at a time, and at most ``max_queue`` waiting.

    A caller enters at once if a slot is free and nobody is queued; otherwise it queues, first
    in first out, if the queue has room; otherwise it is refused with ``BulkheadFullError``.
    A queued caller waits until a slot is handed to it or it is cancelled; the bulkhead has no
    timer of its own, so bound the wait with the hop's deadline (``asyncio.timeout`` or the
    :class:`~govbus.resilience.Watchdog`). A cancelled waiter leaves the queue, and a slot
    handed to a waiter that is cancelled in the same moment is passed on, so no slot leaks.
    Belongs to one event loop; not thread-safe.

    Args:
        max_concurrent: holders at a time; >= 1.
        max_queue: callers that may wait for a slot; >= 0 (0: refuse whenever full).
        name: used in error messages (e.g. the agent name).
    """

    def __init__(self, max_concurrent: int, max_queue: int = 0, *, name: str = "") -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        if max_queue < 0:
            raise ValueError("max_queue must not be negative")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.name = name
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        """Holders right now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Callers queued for a slot right now."""
        return sum(not w.done() for w in self._waiters)

    async def acquire(self) -> None:
        """Take a slot, queueing if allowed; pair with :meth:`release` (or use ``async with``).

        Raises:
            BulkheadFullError: every slot is busy and the queue is full.
        """
        if self._active < self.max_concurrent and not self._waiters:
            self._active += 1
            return
        if len(self._waiters) >= self.max_queue:
            # Waiters cancelled a moment ago leave the queue only when their task next runs.
            self._waiters = deque(w for w in self._waiters if not w.done())
        if len(self._waiters) >= self.max_queue:
            raise BulkheadFullError(
                f"bulkhead {self.name or 'bulkhead'} is full: {self._active} running, "
                f"{self.waiting} queued"
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        # The releasing holder handed its slot over; ``_active`` already counts us.

    def release(self) -> None:
        """Give a slot back: to the first queued caller if any, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._active <= 0:
            raise RuntimeError("Bulkhead.release called more often than acquire")
        self._active -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
