"""Helpers shared by the resilience tests."""

from __future__ import annotations


class ManualClock:
    """Monotonic seconds that move only when told to (the resilience primitives' clock)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
