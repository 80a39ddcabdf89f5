"""Budgets: at most ``limit`` calls, tokens or cost units per key (agent) in a sliding window.

The window slides in steps of one *bucket* (``window / buckets`` seconds): time is cut into
buckets of that width, each spend is added to the bucket it falls in, and a key's spend is the
sum of its last ``buckets + 1`` buckets (the current one included). Hence:

- **Guarantee**: in any interval of ``window`` seconds, the spend accepted for one key never
  exceeds ``limit``. A spend counts for at least ``window`` seconds.
- **Cost of bounded memory**: a spend is released between ``window`` and ``window + window /
  buckets`` seconds after it was made (the end of its bucket's last window), not at exactly
  ``window``. Memory is at most ``buckets + 1`` numbers per key, whatever the spend rate.
  Keys with nothing left in their window are dropped, on use and in a sweep that runs at most
  once per ``window`` seconds, so idle keys cost nothing.

A spend is all or nothing: one that does not fit is refused and nothing is recorded. The budget
belongs to one event loop and is not thread-safe; it never awaits.

Example:
    >>> now = [0.0]
    >>> budget = Budget(3, 60.0, clock=lambda: now[0])
    >>> [budget.try_spend("advisor") for _ in range(4)]
    [True, True, True, False]
    >>> budget.remaining("advisor"), budget.remaining("snapshot")
    (0.0, 3.0)
    >>> now[0] = 66.0      # window + one bucket (60 / 10): the spends have left the window
    >>> budget.try_spend("advisor")
    True
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from govbus.errors import BudgetExhaustedError

Unit = Literal["calls", "tokens", "cost"]
UNITS: tuple[Unit, ...] = ("calls", "tokens", "cost")


class Budget:
    """Spend limits per key over a sliding window (see the module docstring for the window).

    Args:
        limit: the most a key may spend in any ``window`` seconds; >= 0.
        window: the window's length in seconds; > 0.
        unit: what is counted, ``"calls"``, ``"tokens"`` or ``"cost"`` (a label for messages
            and alerts; the arithmetic is the same).
        buckets: how many steps the window slides in; more is finer and costs more memory.
        clock: monotonic seconds; inject a fake one in tests.
        on_exhausted: called as ``hook(key)`` when a spend for ``key`` is refused, at most once
            per key per ``window`` seconds (the first refusal fires it; refusals within
            ``window`` seconds of that firing do not). Called after the refusal is decided; an
            exception from the hook propagates to the caller. May also be assigned later.
    """

    def __init__(
        self,
        limit: float,
        window: float,
        *,
        unit: Unit = "calls",
        buckets: int = 10,
        clock: Callable[[], float] = time.monotonic,
        on_exhausted: Callable[[str], None] | None = None,
    ) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        if window <= 0:
            raise ValueError("window must be positive")
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
        if buckets < 1:
            raise ValueError("buckets must be at least 1")
        self.limit = limit
        self.window = window
        self.unit = unit
        self.buckets = buckets
        self.on_exhausted = on_exhausted
        self._clock = clock
        self._width = window / buckets
        self._spent: dict[str, deque[tuple[int, float]]] = {}
        self._alerted: dict[str, float] = {}  # key -> when on_exhausted last fired
        self._swept = clock()

    def used(self, key: str) -> float:
        """What ``key`` has spent in the current window."""
        now = self._clock()
        return self._used(key, self._bucket(now))

    def remaining(self, key: str) -> float:
        """What ``key`` may still spend in the current window (never negative)."""
        return max(0.0, self.limit - self.used(key))

    def try_spend(self, key: str, amount: float = 1) -> bool:
        """Spend ``amount`` for ``key`` if it fits in the window; False (nothing spent) if not.

        Raises:
            ValueError: ``amount`` is negative.
        """
        if amount < 0:
            raise ValueError("amount must not be negative")
        now = self._clock()
        if now - self._swept >= self.window:
            self._sweep(now)
        current = self._bucket(now)
        if self._used(key, current) + amount > self.limit:
            self._exhausted(key, now)
            return False
        entries = self._spent.setdefault(key, deque())
        if entries and entries[-1][0] == current:
            entries[-1] = (current, entries[-1][1] + amount)
        else:
            entries.append((current, amount))
        return True

    def spend(self, key: str, amount: float = 1) -> None:
        """Like :meth:`try_spend`, but raise when the spend does not fit.

        Raises:
            BudgetExhaustedError: the spend would exceed the limit; nothing was spent.
        """
        if not self.try_spend(key, amount):
            raise BudgetExhaustedError(
                f"{self.unit} budget of {key!r} exhausted: {self.used(key):g} of "
                f"{self.limit:g} used in {self.window:g}s, {amount:g} more requested",
                key=key,
            )

    def _bucket(self, now: float) -> int:
        return math.floor(now / self._width)

    def _used(self, key: str, current: int) -> float:
        entries = self._spent.get(key)
        if entries is None:
            return 0.0
        oldest = current - self.buckets
        while entries and entries[0][0] < oldest:
            entries.popleft()
        if not entries:
            del self._spent[key]
            return 0.0
        # Summed afresh (at most buckets + 1 terms) so float cost units cannot drift.
        return math.fsum(amount for _, amount in entries)

    def _exhausted(self, key: str, now: float) -> None:
        last = self._alerted.get(key)
        if last is not None and now - last < self.window:
            return
        self._alerted[key] = now
        if self.on_exhausted is not None:
            self.on_exhausted(key)

    def _sweep(self, now: float) -> None:
        self._swept = now
        current = self._bucket(now)
        for key in list(self._spent):
            self._used(key, current)
        for key, at in list(self._alerted.items()):
            if now - at >= self.window:
                del self._alerted[key]
