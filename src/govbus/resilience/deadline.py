"""Deadlines: a message's deadline bounds every hop; an agent's timeout bounds its handler.

While a handler runs, the end of its hop (less a small reserve, so the handler can still act
on a timeout error) is visible to everything it calls, through a context variable:
:func:`hop_deadline` returns it (a ``time.monotonic()`` reading) and :func:`time_left` the
seconds remaining. The model wrappers and the scripted model honour it without being told, so
a model call made inside a handler can never outlive the hop; code that calls other services
passes ``time_left()`` as its timeout.

Example:
    >>> with deadline_scope(time.monotonic() + 2.0):
    ...     0 < time_left() <= 2.0
    True
    >>> time_left() is None
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from govbus.envelope import Message

#: The end of the running hop (``time.monotonic()`` seconds); the orchestrator sets it around
#: each handler call. Read it with :func:`hop_deadline`; bound a block with
#: :func:`deadline_scope`.
HOP_DEADLINE: ContextVar[float | None] = ContextVar("govbus_hop_deadline", default=None)


def hop_deadline() -> float | None:
    """The ``time.monotonic()`` reading by which the current hop must finish, or None outside
    a hop (or inside one without a bound)."""
    return HOP_DEADLINE.get()


def time_left() -> float | None:
    """Seconds until the current hop's deadline (0 when it has passed), or None without one."""
    end = HOP_DEADLINE.get()
    return None if end is None else max(0.0, end - time.monotonic())


@contextmanager
def deadline_scope(end: float) -> Iterator[None]:
    """Bound everything called inside the block by ``end`` (``time.monotonic()`` seconds).

    Scopes nest: an inner scope can shorten the deadline, never extend it.
    """
    current = HOP_DEADLINE.get()
    token = HOP_DEADLINE.set(end if current is None else min(current, end))
    try:
        yield
    finally:
        HOP_DEADLINE.reset(token)


def hop_budget(message: Message, timeout: float, now: datetime) -> float:
    """Seconds a handler may run: the agent's ``timeout``, cut short by the message deadline.

    A result <= 0 means the deadline has already passed.
    """
    if message.deadline is None:
        return timeout
    return min(timeout, (message.deadline - now).total_seconds())


class Watchdog:
    """Per-hop timeouts for one event loop: cancels a task whose hop overran its budget.

    Same semantics as ``asyncio.timeout`` (the cancellation it causes is withdrawn with
    ``Task.uncancel``; a cancellation from anyone else still propagates), at a fraction of the
    cost: arming is a small object and a set insertion, and one periodic scan every
    ``resolution`` seconds checks the hops in flight. ``asyncio.timeout`` schedules and
    cancels a heap timer per hop, which was the largest single cost on the dispatch path.
    Timeouts fire up to ``resolution`` late; agent timeouts are seconds.

    Use::

        guard = watchdog.arm(budget)
        try:
            result = await work()
        except asyncio.CancelledError:
            if not guard.disarm():
                raise          # somebody else cancelled us
            ...                # timed out
        else:
            if guard.disarm():
                ...            # timed out, but the work swallowed the cancellation
    """

    __slots__ = ("_armed", "_handle", "_loop", "resolution")

    def __init__(self, resolution: float = 0.005) -> None:
        self.resolution = resolution
        self._armed: set[Guard] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, delay: float) -> Guard:
        """Guard the current task for ``delay`` seconds."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - only inside a task
            raise RuntimeError("Watchdog.arm must be called inside an asyncio task")
        guard = Guard(self, task, loop.time() + delay)
        self._armed.add(guard)
        if self._handle is None:
            self._handle = loop.call_later(self.resolution, self._scan)
        return guard

    def _scan(self) -> None:
        self._handle = None
        if not self._armed:
            return
        assert self._loop is not None
        now = self._loop.time()
        for guard in [g for g in self._armed if g.when <= now]:
            self._armed.discard(guard)
            guard.fired = True
            guard.task.cancel()
        if self._armed:
            self._handle = self._loop.call_later(self.resolution, self._scan)

    def close(self) -> None:
        """Stop scanning (armed guards will no longer fire)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._armed.clear()
        self._loop = None


class Guard:
    """One armed hop (see :class:`Watchdog`)."""

    __slots__ = ("_base", "_owner", "fired", "task", "when")

    def __init__(self, owner: Watchdog, task: asyncio.Task[object], when: float) -> None:
        self._owner = owner
        self.task = task
        self.when = when
        self.fired = False
        self._base = task.cancelling()

    def disarm(self) -> bool:
        """Stop guarding. True if the guard fired and its cancellation was the only one (the
        caller treats the work as timed out); False if it never fired, or if another
        cancellation is also pending (the caller must let ``CancelledError`` propagate)."""
        if not self.fired:
            self._owner._armed.discard(self)
            return False
        return self.task.uncancel() <= self._base
