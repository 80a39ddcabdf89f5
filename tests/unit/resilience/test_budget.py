"""Budgets: spend per key in a sliding window, refused beyond the limit, recovered later."""

from __future__ import annotations

import random

import pytest

from govbus.errors import BudgetExhaustedError, GovbusError
from govbus.resilience import Budget
from tests.unit.resilience.support import ManualClock


def test_spends_up_to_the_limit_then_refuses() -> None:
    budget = Budget(3, 60.0, clock=ManualClock())
    assert [budget.try_spend("advisor") for _ in range(4)] == [True, True, True, False]
    assert budget.used("advisor") == 3
    assert budget.remaining("advisor") == 0


def test_a_spend_that_does_not_fit_is_refused_whole() -> None:
    budget = Budget(1000, 60.0, unit="tokens", clock=ManualClock())
    assert budget.try_spend("advisor", 700)
    assert not budget.try_spend("advisor", 400)
    assert budget.remaining("advisor") == 300
    assert budget.try_spend("advisor", 300)


def test_a_spend_larger_than_the_limit_is_always_refused() -> None:
    budget = Budget(10, 60.0, unit="cost", clock=ManualClock())
    assert not budget.try_spend("advisor", 10.5)
    assert budget.used("advisor") == 0


def test_keys_have_separate_budgets() -> None:
    budget = Budget(2, 60.0, clock=ManualClock())
    assert budget.try_spend("advisor", 2)
    assert not budget.try_spend("advisor")
    assert budget.try_spend("snapshot")
    assert budget.remaining("snapshot") == 1
    assert budget.remaining("never_seen") == 2


def test_spends_count_for_the_whole_window_and_are_released_within_one_bucket_after() -> None:
    clock = ManualClock()
    budget = Budget(3, 60.0, buckets=10, clock=clock)  # buckets of 6 s
    budget.try_spend("advisor", 3)
    clock.advance(60)
    assert not budget.try_spend("advisor")  # still inside the window
    clock.advance(6)
    assert budget.remaining("advisor") == 3
    assert budget.try_spend("advisor", 3)


def test_the_window_slides() -> None:
    clock = ManualClock()
    budget = Budget(3, 60.0, clock=clock)
    budget.try_spend("advisor", 2)
    clock.advance(30)
    budget.try_spend("advisor", 1)
    clock.advance(36)  # t=66: the spends of t=0 have left, the one of t=30 has not
    assert budget.used("advisor") == 1
    assert not budget.try_spend("advisor", 3)
    assert budget.try_spend("advisor", 2)
    clock.advance(30)  # t=96: the spend of t=30 has left too
    assert budget.used("advisor") == 2


def test_no_interval_of_one_window_ever_holds_more_than_the_limit() -> None:
    rng = random.Random(5)
    clock = ManualClock()
    budget = Budget(50, 10.0, unit="tokens", buckets=4, clock=clock)
    accepted: list[tuple[float, float]] = []
    for _ in range(2000):
        clock.advance(rng.uniform(0, 0.3))
        amount = rng.randint(1, 8)
        if budget.try_spend("advisor", amount):
            accepted.append((clock.now, amount))
    assert len(accepted) > 250  # about 30 windows of some 11 spends: it recovered each time
    for end, _ in accepted:
        in_window = sum(a for t, a in accepted if end - 10.0 <= t <= end)
        assert in_window <= 50


def test_memory_is_bounded_per_key_and_idle_keys_are_dropped() -> None:
    clock = ManualClock()
    budget = Budget(10**9, 60.0, buckets=10, clock=clock)
    for _ in range(10_000):
        budget.try_spend("busy")
        clock.advance(0.5)
    assert len(budget._spent["busy"]) <= budget.buckets + 1
    for i in range(100):
        budget.try_spend(f"once-{i}")
    clock.advance(200)
    budget.try_spend("busy")  # a spend after a quiet window sweeps idle keys
    assert set(budget._spent) == {"busy"}


def test_on_exhausted_fires_once_per_key_per_window() -> None:
    clock = ManualClock()
    fired: list[str] = []
    budget = Budget(1, 60.0, clock=clock, on_exhausted=fired.append)
    budget.try_spend("advisor")
    budget.try_spend("snapshot")
    assert fired == []  # using the last unit is not running out; a refusal is
    for _ in range(3):
        budget.try_spend("advisor")
    assert fired == ["advisor"]
    budget.try_spend("snapshot")
    assert fired == ["advisor", "snapshot"]
    clock.advance(59)
    budget.try_spend("advisor")
    assert fired == ["advisor", "snapshot"]
    clock.advance(1)  # a window after the first firing, still exhausted: fires again
    budget.try_spend("advisor")
    assert fired == ["advisor", "snapshot", "advisor"]


def test_spend_raises_a_typed_error_naming_the_key() -> None:
    budget = Budget(100, 60.0, unit="tokens", clock=ManualClock())
    budget.spend("advisor", 80)
    with pytest.raises(BudgetExhaustedError, match="tokens budget of 'advisor'") as info:
        budget.spend("advisor", 30)
    assert isinstance(info.value, GovbusError)
    assert info.value.code == "budget_exhausted"
    assert info.value.retryable is False
    assert info.value.key == "advisor"
    assert budget.used("advisor") == 80


def test_negative_spends_are_refused() -> None:
    budget = Budget(1, 60.0, clock=ManualClock())
    with pytest.raises(ValueError, match="negative"):
        budget.try_spend("advisor", -1)


@pytest.mark.parametrize(
    ("limit", "window", "unit", "buckets"),
    [(-1, 60.0, "calls", 10), (1, 0.0, "calls", 10), (1, 60.0, "euros", 10), (1, 60.0, "calls", 0)],
)
def test_invalid_settings_are_refused(limit: float, window: float, unit: str, buckets: int) -> None:
    with pytest.raises(ValueError, match="must"):
        Budget(limit, window, unit=unit, buckets=buckets)  # type: ignore[arg-type]
