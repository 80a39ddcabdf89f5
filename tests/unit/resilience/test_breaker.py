"""Circuit breaker: the closed / open / half-open state machine and its single probe."""

from __future__ import annotations

import asyncio

import pytest

from govbus.errors import BreakerOpenError, GovbusError
from govbus.resilience import BreakerState, CircuitBreaker
from tests.unit.resilience.support import ManualClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def tripped(clock: ManualClock, threshold: int = 2, recovery: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(threshold, recovery, clock=clock)
    for _ in range(threshold):
        breaker.acquire().record_failure()
    assert breaker.state is OPEN
    return breaker


async def fail() -> None:
    raise RuntimeError("dependency down")


async def ok() -> str:
    return "ok"


def test_a_new_breaker_is_closed_and_admits_calls() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=ManualClock())
    assert breaker.state is CLOSED
    assert breaker.allow()
    assert breaker.retry_after() == 0.0


def test_it_opens_at_the_threshold_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=ManualClock())
    for _ in range(2):
        breaker.acquire().record_failure()
    assert breaker.state is CLOSED and breaker.failures == 2
    breaker.acquire().record_failure()
    assert breaker.state is OPEN
    assert not breaker.allow()


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker(3, 10.0, clock=ManualClock())
    for outcome in ["fail", "fail", "ok", "fail", "fail"]:
        permit = breaker.acquire()
        permit.record_failure() if outcome == "fail" else permit.record_success()
    assert breaker.state is CLOSED and breaker.failures == 2


def test_open_refuses_until_the_recovery_time_then_turns_half_open() -> None:
    clock = ManualClock()
    breaker = tripped(clock, recovery=30.0)
    clock.advance(29.5)
    assert breaker.state is OPEN
    assert breaker.try_acquire() is None
    with pytest.raises(BreakerOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert breaker.state is HALF_OPEN
    assert breaker.allow()


def test_breaker_open_error_is_typed_and_not_retryable() -> None:
    breaker = tripped(ManualClock())
    with pytest.raises(BreakerOpenError) as info:
        breaker.acquire()
    assert isinstance(info.value, GovbusError)
    assert info.value.code == "circuit_open"
    assert info.value.retryable is False


async def test_call_does_not_run_the_function_while_open() -> None:
    breaker = tripped(ManualClock())
    calls = []

    async def work() -> None:
        calls.append(1)

    with pytest.raises(BreakerOpenError):
        await breaker.call(work)
    assert calls == []


async def test_call_records_results_and_reraises_failures() -> None:
    breaker = CircuitBreaker(2, 10.0, clock=ManualClock())
    assert await breaker.call(ok) == "ok"
    with pytest.raises(RuntimeError, match="dependency down"):
        await breaker.call(fail)
    assert breaker.failures == 1
    with pytest.raises(RuntimeError):
        await breaker.call(fail)
    assert breaker.state is OPEN


def test_half_open_admits_one_probe_at_a_time() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(30)
    probe = breaker.try_acquire()
    assert probe is not None and probe.probe
    assert not breaker.allow()
    assert breaker.try_acquire() is None
    assert breaker.retry_after() is None
    with pytest.raises(BreakerOpenError, match="half_open"):
        breaker.acquire()


def test_a_successful_probe_closes_the_breaker_and_resets_the_count() -> None:
    clock = ManualClock()
    breaker = tripped(clock, threshold=2)
    clock.advance(30)
    breaker.acquire().record_success()
    assert breaker.state is CLOSED and breaker.failures == 0
    breaker.acquire().record_failure()
    assert breaker.state is CLOSED  # one failure of a fresh count of two


def test_a_failed_probe_reopens_the_breaker_and_restarts_the_timer() -> None:
    clock = ManualClock()
    breaker = tripped(clock, recovery=30.0)
    clock.advance(30)
    probe = breaker.acquire()
    clock.advance(5)  # the probe took five seconds to fail
    probe.record_failure()
    assert breaker.state is OPEN
    clock.advance(29.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert breaker.state is HALF_OPEN


def test_a_probe_released_without_verdict_frees_the_slot() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(30)
    breaker.acquire().release()
    assert breaker.state is HALF_OPEN
    assert breaker.try_acquire() is not None


async def test_a_cancelled_probe_frees_the_slot() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(30)
    task = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    assert not breaker.allow()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF_OPEN and breaker.allow()


async def test_half_open_runs_exactly_one_probe_among_100_simultaneous_callers() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(30)
    go, finish = asyncio.Event(), asyncio.Event()
    probes = 0

    async def probe() -> str:
        nonlocal probes
        probes += 1
        await finish.wait()
        return "probed"

    async def caller() -> str:
        await go.wait()  # all 100 are in flight before any of them calls
        try:
            return await breaker.call(probe)
        except BreakerOpenError:
            return "refused"

    tasks = [asyncio.create_task(caller()) for _ in range(100)]
    await asyncio.sleep(0)
    go.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert probes == 1
    assert sum(t.done() for t in tasks) == 99  # refused at once, not queued behind the probe
    finish.set()
    results = await asyncio.gather(*tasks)
    assert results.count("probed") == 1 and results.count("refused") == 99
    assert probes == 1
    assert breaker.state is CLOSED


def test_the_callback_fires_once_per_transition() -> None:
    clock = ManualClock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(
        1, 10.0, clock=clock, on_state_change=lambda o, n: changes.append((o, n))
    )
    breaker.acquire().record_failure()
    for _ in range(3):
        assert not breaker.allow()
    clock.advance(10)
    for _ in range(3):
        assert breaker.state is HALF_OPEN
    breaker.acquire().record_failure()
    clock.advance(10)
    breaker.acquire().record_success()
    breaker.acquire().record_success()
    assert changes == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_the_callback_can_be_assigned_after_construction() -> None:
    breaker = CircuitBreaker(1, 10.0, clock=ManualClock())
    seen: list[BreakerState] = []
    breaker.on_state_change = lambda old, new: seen.append(new)
    breaker.acquire().record_failure()
    assert seen == [OPEN]


def test_a_verdict_from_before_the_breaker_opened_is_ignored() -> None:
    """A slow call admitted while closed can neither close an open breaker nor re-open a
    half-open one."""
    clock = ManualClock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    slow_ok, slow_fail = breaker.acquire(), breaker.acquire()
    breaker.acquire().record_failure()
    slow_ok.record_success()
    assert breaker.state is OPEN
    clock.advance(30)
    assert breaker.state is HALF_OPEN
    slow_fail.record_failure()
    assert breaker.state is HALF_OPEN and breaker.allow()


def test_a_stale_failure_does_not_restart_the_recovery_timer() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(1, 30.0, clock=clock)
    slow = breaker.acquire()
    breaker.acquire().record_failure()
    clock.advance(20)
    slow.record_failure()
    clock.advance(10)
    assert breaker.state is HALF_OPEN


async def test_exceptions_rejected_by_is_failure_count_as_neither() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(
        1, 10.0, clock=clock, is_failure=lambda e: not isinstance(e, ValueError)
    )

    async def bad_input() -> None:
        raise ValueError("the caller's fault, not the dependency's")

    with pytest.raises(ValueError, match="caller's fault"):
        await breaker.call(bad_input)
    assert breaker.state is CLOSED and breaker.failures == 0
    breaker.acquire().record_failure()
    clock.advance(10)
    with pytest.raises(ValueError, match="caller's fault"):
        await breaker.call(bad_input)  # the probe ends without a verdict
    assert breaker.state is HALF_OPEN and breaker.allow()


async def test_a_verdict_given_inside_async_with_is_kept() -> None:
    breaker = CircuitBreaker(1, 10.0, clock=ManualClock())
    async with breaker.acquire() as permit:
        permit.record_failure()
    assert breaker.state is OPEN


def test_a_permit_takes_exactly_one_verdict() -> None:
    breaker = CircuitBreaker(5, 10.0, clock=ManualClock())
    permit = breaker.acquire()
    permit.record_success()
    with pytest.raises(RuntimeError, match="verdict"):
        permit.record_failure()


@pytest.mark.parametrize(("threshold", "recovery"), [(0, 1.0), (1, -1.0)])
def test_invalid_settings_are_refused(threshold: int, recovery: float) -> None:
    with pytest.raises(ValueError, match="must"):
        CircuitBreaker(threshold, recovery)
