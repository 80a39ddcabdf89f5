"""Retry: the backoff schedule, and retrying only typed retryable errors within the deadline."""

from __future__ import annotations

import asyncio
import random

import pytest

from govbus.errors import (
    AgentTimeoutError,
    BusUnavailableError,
    DeadlineExceededError,
    GovbusError,
    PolicyDeniedError,
)
from govbus.resilience import RetryPolicy, is_retryable, retry
from tests.unit.resilience.support import ManualClock


class Flaky:
    """Fails with the given errors in turn, then returns "done"; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Sleeper:
    """An injected sleep: records each delay and moves the fake clock by it."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.clock.advance(delay)


def test_schedule_without_jitter_grows_and_is_capped() -> None:
    policy = RetryPolicy(6, base_delay=0.1, max_delay=0.5, jitter="none")
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_schedule_with_a_custom_multiplier() -> None:
    policy = RetryPolicy(4, base_delay=1.0, max_delay=100.0, multiplier=3.0, jitter="none")
    assert list(policy.delays()) == [1.0, 3.0, 9.0]


def test_one_attempt_means_no_delays() -> None:
    assert list(RetryPolicy(1, base_delay=1.0, max_delay=1.0).delays()) == []


def test_full_jitter_with_a_seeded_rng_is_reproducible_and_within_the_caps() -> None:
    def schedule(seed: int) -> list[float]:
        policy = RetryPolicy(6, base_delay=0.1, max_delay=0.5, rng=random.Random(seed))
        return list(policy.delays())

    first = schedule(42)
    assert first == schedule(42)
    assert first != schedule(43)
    reference = random.Random(42)
    assert first == [reference.uniform(0, cap) for cap in [0.1, 0.2, 0.4, 0.5, 0.5]]
    assert all(0 <= d <= cap for d, cap in zip(first, [0.1, 0.2, 0.4, 0.5, 0.5], strict=True))


def test_a_huge_attempt_count_does_not_overflow() -> None:
    policy = RetryPolicy(5000, base_delay=1.0, max_delay=60.0, multiplier=10.0, jitter="none")
    assert list(policy.delays())[-1] == 60.0


def test_only_retryable_govbus_errors_are_retryable() -> None:
    assert is_retryable(BusUnavailableError("down"))
    assert is_retryable(AgentTimeoutError("slow"))
    assert not is_retryable(PolicyDeniedError("no"))
    assert not is_retryable(GovbusError("generic"))
    assert not is_retryable(ConnectionError("foreign, untyped"))


async def test_retries_retryable_errors_until_success_with_the_backoff_sleeps() -> None:
    clock = ManualClock()
    sleep = Sleeper(clock)
    fn = Flaky(BusUnavailableError("down"), BusUnavailableError("down"))
    policy = RetryPolicy(5, base_delay=0.1, max_delay=1.0, jitter="none")
    assert await retry(fn, policy, sleep=sleep, clock=clock) == "done"
    assert fn.calls == 3
    assert sleep.delays == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize("error", [PolicyDeniedError("no"), ValueError("bug"), GovbusError("x")])
async def test_non_retryable_errors_are_raised_at_once(error: Exception) -> None:
    sleep = Sleeper(ManualClock())
    fn = Flaky(error)
    with pytest.raises(type(error)) as info:
        await retry(fn, RetryPolicy(5, 0.1, 1.0), sleep=sleep)
    assert info.value is error
    assert fn.calls == 1 and sleep.delays == []


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    sleep = Sleeper(ManualClock())
    errors = [BusUnavailableError(f"down {i}") for i in range(10)]
    fn = Flaky(*errors)
    with pytest.raises(BusUnavailableError) as info:
        await retry(fn, RetryPolicy(4, 0.1, 1.0, jitter="none"), sleep=sleep)
    assert fn.calls == 4
    assert info.value is errors[3]
    assert len(sleep.delays) == 3


async def test_no_wait_crosses_the_deadline() -> None:
    clock = ManualClock(100.0)
    sleep = Sleeper(clock)
    fn = Flaky(*[BusUnavailableError("down") for _ in range(10)])
    policy = RetryPolicy(10, base_delay=1.0, max_delay=60.0, jitter="none")
    with pytest.raises(BusUnavailableError):
        await retry(fn, policy, sleep=sleep, clock=clock, deadline=105.0)
    # waits of 1, 2 end at 103; the next (4) would end at 107, past the deadline: not begun
    assert sleep.delays == [1.0, 2.0]
    assert fn.calls == 3
    assert clock.now == 103.0


async def test_a_wait_ending_exactly_at_the_deadline_is_not_begun() -> None:
    clock = ManualClock()
    sleep = Sleeper(clock)
    fn = Flaky(BusUnavailableError("down"), BusUnavailableError("down"))
    policy = RetryPolicy(3, base_delay=1.0, max_delay=60.0, jitter="none")
    with pytest.raises(BusUnavailableError):
        await retry(fn, policy, sleep=sleep, clock=clock, deadline=3.0)
    assert sleep.delays == [1.0]


async def test_no_attempt_starts_after_an_overlong_sleep() -> None:
    """A sleep that overshoots (a busy loop) past the deadline ends the retries."""
    clock = ManualClock()

    async def late_sleep(delay: float) -> None:
        clock.advance(delay + 10)

    fn = Flaky(BusUnavailableError("down"))
    with pytest.raises(BusUnavailableError):
        await retry(fn, RetryPolicy(3, 1.0, 1.0), sleep=late_sleep, clock=clock, deadline=5.0)
    assert fn.calls == 1


async def test_a_deadline_already_passed_runs_nothing() -> None:
    fn = Flaky()
    with pytest.raises(DeadlineExceededError):
        await retry(fn, RetryPolicy(3, 0.1, 1.0), clock=ManualClock(10.0), deadline=10.0)
    assert fn.calls == 0


async def test_a_predicate_narrows_what_is_retried_but_cannot_widen_it() -> None:
    sleep = Sleeper(ManualClock())
    policy = RetryPolicy(5, 0.1, 1.0)

    fn = Flaky(BusUnavailableError("down"))
    with pytest.raises(BusUnavailableError):
        await retry(fn, policy, sleep=sleep, retry_if=lambda e: False)
    assert fn.calls == 1

    fn = Flaky(ConnectionError("foreign"))
    with pytest.raises(ConnectionError):
        await retry(fn, policy, sleep=sleep, retry_if=lambda e: True)
    assert fn.calls == 1

    fn = Flaky(AgentTimeoutError("slow"), BusUnavailableError("down"))
    with pytest.raises(BusUnavailableError):
        await retry(fn, policy, sleep=sleep, retry_if=lambda e: isinstance(e, AgentTimeoutError))
    assert fn.calls == 2


async def test_on_retry_reports_each_failed_attempt_and_its_wait() -> None:
    sleep = Sleeper(ManualClock())
    first, second = BusUnavailableError("a"), BusUnavailableError("b")
    seen: list[tuple[int, BaseException, float]] = []
    policy = RetryPolicy(3, 0.5, 5.0, jitter="none")
    await retry(
        Flaky(first, second),
        policy,
        sleep=sleep,
        on_retry=lambda n, e, d: seen.append((n, e, d)),
    )
    assert seen == [(1, first, 0.5), (2, second, 1.0)]


async def test_cancellation_is_never_retried() -> None:
    fn = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await retry(fn, RetryPolicy(5, 0.1, 1.0), sleep=Sleeper(ManualClock()))
    assert fn.calls == 1


async def test_the_default_sleep_is_asyncio_sleep() -> None:
    fn = Flaky(BusUnavailableError("down"))
    assert await retry(fn, RetryPolicy(2, 0.0, 0.0)) == "done"
    assert fn.calls == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0, "base_delay": 0.1, "max_delay": 1.0},
        {"max_attempts": 3, "base_delay": -0.1, "max_delay": 1.0},
        {"max_attempts": 3, "base_delay": 2.0, "max_delay": 1.0},
        {"max_attempts": 3, "base_delay": 0.1, "max_delay": 1.0, "multiplier": 0.5},
        {"max_attempts": 3, "base_delay": 0.1, "max_delay": 1.0, "jitter": "equal"},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
