"""Retry with exponential backoff and jitter, on typed retryable errors only.

Only a :class:`~govbus.errors.GovbusError` whose ``retryable`` flag is True is retried. A
caller-given predicate can narrow that further but never widen it: to retry a foreign exception
(an HTTP client's, say), translate it into a retryable ``GovbusError`` where it is raised, so
the decision is typed and visible in audit records.

Example:
    >>> policy = RetryPolicy(max_attempts=5, base_delay=0.1, max_delay=1.0, jitter="none")
    >>> [round(d, 3) for d in policy.delays()]
    [0.1, 0.2, 0.4, 0.8]
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from govbus.errors import DeadlineExceededError, GovbusError

T = TypeVar("T")

Jitter = Literal["full", "none"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts.

    The delay before attempt ``n + 1`` (n = 1, 2, ...) is ``min(max_delay, base_delay *
    multiplier ** (n - 1))``; with ``jitter="full"`` it is drawn uniformly from ``[0, that]``
    ("full jitter", which spreads retries of many callers apart), with ``jitter="none"`` it is
    used as is.

    Args:
        max_attempts: attempts in all, the first one included; >= 1 (1 means no retry).
        base_delay: the first delay in seconds; >= 0.
        max_delay: the cap on any delay in seconds; >= base_delay.
        multiplier: growth per attempt; >= 1.
        jitter: ``"full"`` or ``"none"``.
        rng: the random source for jitter; seed one for a reproducible schedule. Default: the
            ``random`` module's shared generator.
    """

    max_attempts: int
    base_delay: float
    max_delay: float
    multiplier: float = 2.0
    jitter: Jitter = "full"
    rng: random.Random | None = field(default=None, kw_only=True, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0:
            raise ValueError("base_delay must not be negative")
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if self.jitter not in ("full", "none"):
            raise ValueError(f"jitter must be 'full' or 'none', not {self.jitter!r}")

    def delays(self) -> Iterator[float]:
        """The ``max_attempts - 1`` waits between attempts, in order (fresh jitter each call).

        >>> rng = random.Random(7)
        >>> policy = RetryPolicy(4, base_delay=1.0, max_delay=3.0, rng=rng)
        >>> delays = list(policy.delays())
        >>> len(delays), all(0 <= d <= cap for d, cap in zip(delays, [1.0, 2.0, 3.0]))
        (3, True)
        """
        uniform = self.rng.uniform if self.rng is not None else random.uniform
        cap = self.base_delay
        for _ in range(self.max_attempts - 1):
            yield uniform(0.0, cap) if self.jitter == "full" else cap
            # Grown step by step and capped, so a large max_attempts cannot overflow.
            cap = min(self.max_delay, cap * self.multiplier)


def is_retryable(exc: BaseException) -> bool:
    """True for a :class:`~govbus.errors.GovbusError` flagged ``retryable``."""
    return isinstance(exc, GovbusError) and exc.retryable


async def retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    retry_if: Callable[[BaseException], bool] | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``await fn()`` until it returns, retrying per ``policy``; return its result.

    An error is retried only if :func:`is_retryable` holds and, when given, ``retry_if(error)``
    too. Otherwise, or when attempts run out, or when the next wait would reach the deadline,
    the last error is re-raised unchanged. Cancellation and other ``BaseException`` propagate
    at once.

    Args:
        fn: the operation; called once per attempt.
        policy: attempts and backoff.
        sleep: how to wait (inject a recorder in tests).
        deadline: absolute time on ``clock`` after which no attempt starts: a wait that would
            end at or after it is not begun, and no attempt starts at or after it. ``retry``
            does not interrupt a running attempt; bound that with a timeout.
        clock: monotonic seconds, the clock of ``deadline``.
        retry_if: an extra condition an error must meet to be retried.
        on_retry: called as ``hook(attempt, error, delay)`` before each wait, where
            ``attempt`` is the number of the attempt that failed (1 for the first).

    Raises:
        DeadlineExceededError: the deadline had passed before the first attempt.
    """
    if deadline is not None and clock() >= deadline:
        raise DeadlineExceededError("the deadline passed before the first attempt")
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:
            if not is_retryable(exc) or (retry_if is not None and not retry_if(exc)):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            if deadline is not None and clock() + delay >= deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await sleep(delay)
            if deadline is not None and clock() >= deadline:
                raise
