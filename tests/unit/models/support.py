"""Helpers shared by the model tests."""

from __future__ import annotations


class FakeTime:
    """A fake monotonic clock whose ``sleep`` advances it and records each wait."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
