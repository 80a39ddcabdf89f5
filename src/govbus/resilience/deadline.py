"""Deadlines: a message's deadline bounds every hop; an agent's timeout bounds its handler."""

from __future__ import annotations

import asyncio
from datetime import datetime

from govbus.envelope import Message


def hop_budget(message: Message, timeout: float, now: datetime) -> float:
    """Seconds a handler may run: the agent's ``timeout``, cut short by the message deadline.

    A result <= 0 means the deadline has already passed.
    """
    if message.deadline is None:
        return timeout
    return min(timeout, (message.deadline - now).total_seconds())


class HopTimer:
    """Cancels the current task after ``delay`` seconds: the per-delivery timeout.

    Same semantics as ``asyncio.timeout`` (the cancellation it causes is withdrawn with
    ``Task.uncancel``, and a cancellation from anyone else still propagates), at a third of the
    cost: one ``TimerHandle`` and no context-manager state machine. It runs on every hop.

    Use::

        timer = HopTimer(budget)
        try:
            result = await work()
        except asyncio.CancelledError:
            if not timer.disarm():
                raise          # somebody else cancelled us
            ...                # timed out
        else:
            if timer.disarm():
                ...            # timed out, but the work swallowed the cancellation
    """

    __slots__ = ("_base", "_handle", "_task", "fired")

    def __init__(self, delay: float) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - only inside a task
            raise RuntimeError("HopTimer must be used inside an asyncio task")
        self._task = task
        self._base = task.cancelling()
        self.fired = False
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self._task.cancel()

    def disarm(self) -> bool:
        """Stop the timer. True if it fired and its cancellation was the only one (the caller
        treats the work as timed out); False if it never fired, or if another cancellation is
        also pending (the caller must let ``CancelledError`` propagate)."""
        self._handle.cancel()
        if not self.fired:
            return False
        return self._task.uncancel() <= self._base
