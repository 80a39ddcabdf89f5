"""Circuit breaker: stop calling a failing dependency, then probe it one caller at a time.

States (:class:`BreakerState`):

- **closed**: every call is admitted. Consecutive failures are counted; a success resets the
  count. When the count reaches ``failure_threshold`` the breaker opens.
- **open**: every call is refused until ``recovery_time`` seconds have passed since it opened;
  then the breaker becomes half-open.
- **half_open**: exactly one call at a time is admitted, the *probe*. Everyone else is refused
  while it runs. A probe success closes the breaker (the failure count starts again from 0); a
  probe failure opens it again and restarts the recovery timer. A probe that ends with neither
  verdict (cancelled, or an exception that ``is_failure`` rejects) frees the probe slot and
  leaves the breaker half-open, so the next caller probes.

There is no background timer: the open -> half_open transition happens when the breaker is next
looked at (:attr:`CircuitBreaker.state`, :meth:`~CircuitBreaker.allow`,
:meth:`~CircuitBreaker.acquire`). Verdicts from permits taken before the latest state change
are ignored, so a slow call admitted while closed cannot close a breaker that has since opened.
The breaker belongs to one event loop and is not thread-safe; its methods never await, so
acquiring a permit is atomic with respect to other tasks.

Example:
    >>> now = [0.0]
    >>> changes = []
    >>> breaker = CircuitBreaker(2, 30.0, clock=lambda: now[0],
    ...                          on_state_change=lambda old, new: changes.append(new.value))
    >>> for _ in range(2):
    ...     breaker.acquire().record_failure()
    >>> breaker.state.value, breaker.allow()
    ('open', False)
    >>> now[0] = 30.0
    >>> probe = breaker.acquire()            # the one probe of the half-open breaker
    >>> breaker.try_acquire() is None        # everyone else is refused meanwhile
    True
    >>> probe.record_success()
    >>> changes
    ['open', 'half_open', 'closed']
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import TypeVar

from govbus.errors import BreakerOpenError

T = TypeVar("T")

Clock = Callable[[], float]


class BreakerState(StrEnum):
    """The three states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _any_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class CircuitBreaker:
    """A closed / open / half-open circuit breaker with a single half-open probe.

    Args:
        failure_threshold: consecutive failures (while closed) that open the breaker; >= 1.
        recovery_time: seconds the breaker stays open before it admits a probe; >= 0.
        clock: monotonic seconds; inject a fake one in tests.
        on_state_change: called as ``hook(old, new)`` after every transition, by the task whose
            call caused it (the state has already changed; an exception from the hook
            propagates to that caller). May also be assigned later.
        is_failure: which exceptions count as failures of the guarded dependency, for
            :meth:`call` and the permit's ``async with``; default every ``Exception``.
            An exception it rejects is neither a success nor a failure.
        name: used in error messages (e.g. the agent name).
    """

    def __init__(
        self,
        failure_threshold: int,
        recovery_time: float,
        *,
        clock: Clock = time.monotonic,
        on_state_change: Callable[[BreakerState, BreakerState], None] | None = None,
        is_failure: Callable[[BaseException], bool] = _any_exception,
        name: str = "",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if recovery_time < 0:
            raise ValueError("recovery_time must not be negative")
        self.failure_threshold = failure_threshold
        self.recovery_time = recovery_time
        self.on_state_change = on_state_change
        self.is_failure = is_failure
        self.name = name
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._generation = 0  # bumped on every transition; stale permits are ignored

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose recovery time has passed turns half-open)."""
        if (
            self._state is BreakerState.OPEN
            and self._clock() - self._opened_at >= self.recovery_time
        ):
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the breaker last closed (0 unless closed)."""
        return self._failures

    def allow(self) -> bool:
        """Whether :meth:`acquire` would admit a call now. Reserves nothing: use the permit from
        :meth:`try_acquire` or :meth:`acquire` to actually make the call."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def try_acquire(self) -> BreakerPermit | None:
        """A permit for one call, or None if the breaker refuses it."""
        if not self.allow():
            return None
        probe = self._state is BreakerState.HALF_OPEN
        if probe:
            self._probing = True
        return BreakerPermit(self, self._generation, probe)

    def acquire(self) -> BreakerPermit:
        """A permit for one call. Report its outcome with ``record_success`` or
        ``record_failure`` (or use it as ``async with breaker.acquire(): ...``).

        Raises:
            BreakerOpenError: the breaker is open, or half-open with a probe in flight.
        """
        permit = self.try_acquire()
        if permit is None:
            raise BreakerOpenError(
                f"circuit {self.name or 'breaker'} is {self._state.value}",
                retry_after=self.retry_after(),
            )
        return permit

    def retry_after(self) -> float | None:
        """Seconds until an open breaker admits a probe; 0 when it admits calls now; None when
        half-open with a probe in flight (it depends on the probe)."""
        state = self.state
        if state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.recovery_time - self._clock())
        if state is BreakerState.HALF_OPEN and self._probing:
            return None
        return 0.0

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` under a permit: its result is a success, an exception that
        ``is_failure`` accepts is a failure (and is re-raised).

        Raises:
            BreakerOpenError: the call was refused; ``fn`` was not called.
        """
        async with self.acquire():
            return await fn()

    def _record(self, permit: BreakerPermit, success: bool | None) -> None:
        if permit.generation != self._generation:
            return
        if permit.probe:
            self._probing = False
        if self._state is BreakerState.HALF_OPEN:
            if success is True:
                self._transition(BreakerState.CLOSED)
            elif success is False:
                self._opened_at = self._clock()
                self._transition(BreakerState.OPEN)
        elif self._state is BreakerState.CLOSED:
            if success is True:
                self._failures = 0
            elif success is False:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._opened_at = self._clock()
                    self._transition(BreakerState.OPEN)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        self._generation += 1
        self._failures = 0  # the count belongs to one stay in the closed state
        self._probing = False
        if self.on_state_change is not None:
            self.on_state_change(old, new)


class BreakerPermit:
    """Admission for one call through a :class:`CircuitBreaker`; takes exactly one verdict.

    As an async context manager it records the verdict itself: success when the body finishes,
    failure when it raises an exception the breaker's ``is_failure`` accepts, and neither
    (just a release) for any other exception or a cancellation. A verdict already given inside
    the body is kept.
    """

    __slots__ = ("_breaker", "done", "generation", "probe")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self.generation = generation
        self.probe = probe
        self.done = False

    def record_success(self) -> None:
        """The call succeeded."""
        self._finish(True)

    def record_failure(self) -> None:
        """The call failed."""
        self._finish(False)

    def release(self) -> None:
        """Give the permit back without a verdict (a half-open probe slot is freed)."""
        self._finish(None)

    def _finish(self, success: bool | None) -> None:
        if self.done:
            raise RuntimeError("this breaker permit already has its verdict")
        self.done = True
        self._breaker._record(self, success)

    async def __aenter__(self) -> BreakerPermit:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.done:
            return
        if exc is None:
            self.record_success()
        elif self._breaker.is_failure(exc):
            self.record_failure()
        else:
            self.release()
