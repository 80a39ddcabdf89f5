"""Model wrappers: deadline, circuit breaker, budget, retry, and their composition."""

from __future__ import annotations

import pytest

from govbus.errors import BreakerOpenError, BudgetExhaustedError
from govbus.models import (
    BreakerModel,
    BudgetedModel,
    ChatRequest,
    DeadlineModel,
    Fail,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
    Reply,
    RetryingModel,
    ScriptedModel,
    govern,
)
from govbus.resilience import BreakerState, Budget, CircuitBreaker, RetryPolicy

from .support import FakeTime


def unavailable() -> Fail:
    return Fail(ModelUnavailableError("503 from the provider"))


async def test_deadline_model_times_out_a_slow_answer() -> None:
    slow = ScriptedModel(script=[Reply("late", delay=5.0)])
    with pytest.raises(ModelTimeoutError):
        await DeadlineModel(slow, timeout=0.05).complete(ChatRequest.of("x"))


async def test_deadline_model_passes_the_tighter_deadline_down() -> None:
    time = FakeTime()
    inner = ScriptedModel(clock=time.clock, sleep=time.sleep)
    await DeadlineModel(inner, 10.0, clock=time.clock).complete(ChatRequest.of("x", deadline=3.0))
    assert inner.calls[0].deadline == 3.0
    await DeadlineModel(inner, 2.0, clock=time.clock).complete(ChatRequest.of("x", deadline=3.0))
    assert inner.calls[1].deadline == 2.0


async def test_deadline_model_does_not_call_once_the_deadline_passed() -> None:
    time = FakeTime()
    inner = ScriptedModel(clock=time.clock)
    time.now = 5.0
    with pytest.raises(ModelTimeoutError):
        await DeadlineModel(inner, 1.0, clock=time.clock).complete(
            ChatRequest.of("x", deadline=4.0)
        )
    assert inner.calls == []


async def test_breaker_opens_on_transient_failures_and_then_refuses_at_once() -> None:
    time = FakeTime()
    inner = ScriptedModel(script=[unavailable(), unavailable()], default="fine")
    breaker = CircuitBreaker(2, 30.0, clock=time.clock)
    model = BreakerModel(inner, breaker)
    for _ in range(2):
        with pytest.raises(ModelUnavailableError):
            await model.complete(ChatRequest.of("x"))
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BreakerOpenError):
        await model.complete(ChatRequest.of("x"))
    assert len(inner.calls) == 2  # refused without calling the provider
    time.now = 30.0
    assert (await model.complete(ChatRequest.of("x"))).content == "fine"  # the probe
    assert breaker.state is BreakerState.CLOSED


async def test_a_rejected_request_does_not_trip_the_breaker() -> None:
    inner = ScriptedModel(default=Fail(ModelRejectedError("400: prompt too long")))
    breaker = CircuitBreaker(1, 30.0)
    with pytest.raises(ModelRejectedError):
        await BreakerModel(inner, breaker).complete(ChatRequest.of("x"))
    assert breaker.state is BreakerState.CLOSED


async def test_call_budget_refuses_before_calling() -> None:
    time = FakeTime()
    exhausted: list[str] = []
    budget = Budget(2, 60.0, clock=time.clock, on_exhausted=exhausted.append)
    inner = ScriptedModel()
    model = BudgetedModel(inner, budget, "portfolio_advisor")
    await model.complete(ChatRequest.of("x"))
    await model.complete(ChatRequest.of("x"))
    with pytest.raises(BudgetExhaustedError) as info:
        await model.complete(ChatRequest.of("x"))
    assert info.value.key == "portfolio_advisor" and len(inner.calls) == 2
    assert exhausted == ["portfolio_advisor"]
    time.now = 70.0  # the window (and its last bucket) moved past the two spends
    await model.complete(ChatRequest.of("x"))


async def test_token_budget_spends_the_usage_and_refuses_once_spent() -> None:
    time = FakeTime()
    budget = Budget(10, 60.0, unit="tokens", clock=time.clock)
    inner = ScriptedModel(default="one two three four five six")
    model = BudgetedModel(inner, budget, "agent")
    await model.complete(ChatRequest.of("a b"))  # 2 + 6 tokens
    assert budget.used("agent") == 8
    await model.complete(ChatRequest.of("a b"))  # crosses the limit: completes, capped
    assert budget.remaining("agent") == 0
    with pytest.raises(BudgetExhaustedError):
        await model.complete(ChatRequest.of("a b"))
    assert len(inner.calls) == 2


async def test_retry_retries_transient_errors_only() -> None:
    time = FakeTime()
    policy = RetryPolicy(4, base_delay=1.0, max_delay=8.0, jitter="none")
    flaky = ScriptedModel(script=[unavailable(), unavailable()], default="ok")
    model = RetryingModel(flaky, policy, sleep=time.sleep, clock=time.clock)
    assert (await model.complete(ChatRequest.of("x"))).content == "ok"
    assert time.slept == [1.0, 2.0]
    rejected = ScriptedModel(default=Fail(ModelRejectedError("400")))
    with pytest.raises(ModelRejectedError):
        await RetryingModel(rejected, policy, sleep=time.sleep).complete(ChatRequest.of("x"))
    assert len(rejected.calls) == 1


async def test_retry_never_waits_past_the_deadline() -> None:
    time = FakeTime()
    policy = RetryPolicy(5, base_delay=2.0, max_delay=8.0, jitter="none")
    flaky = ScriptedModel(default=unavailable())
    model = RetryingModel(flaky, policy, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ModelUnavailableError):
        await model.complete(ChatRequest.of("x", deadline=5.0))
    assert time.now < 5.0 and len(flaky.calls) == 2  # waited 2s; the next 4s wait would cross


async def test_govern_composes_in_order() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(3, 30.0, clock=time.clock)
    budget = Budget(1, 60.0, clock=time.clock)
    flaky = ScriptedModel(script=[unavailable(), unavailable()], default="ok", clock=time.clock)
    model = govern(
        flaky,
        timeout=1.0,
        breaker=breaker,
        retry=RetryPolicy(3, base_delay=0.5, max_delay=1.0, jitter="none"),
        budget=budget,
        budget_key="advisor",
        sleep=time.sleep,
        clock=time.clock,
    )
    assert (await model.complete(ChatRequest.of("x"))).content == "ok"
    assert budget.used("advisor") == 1  # one logical call, whatever the retries
    assert breaker.state is BreakerState.CLOSED  # the success reset the failure count
    with pytest.raises(BudgetExhaustedError):
        await model.complete(ChatRequest.of("x"))


def test_wrappers_keep_the_model_name() -> None:
    model = govern(ScriptedModel("local/llama"), timeout=1.0, retry=RetryPolicy(2, 0.0, 0.0))
    assert model.name == "local/llama"
