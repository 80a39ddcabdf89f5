"""Wrappers that give a model call the protection an agent gets (SPEC section 9).

Each wrapper is itself a :class:`~govbus.models.ChatModel`, so they compose; :func:`govern`
stacks them in the order that makes each one count once::

    budget -> retry -> circuit breaker -> deadline -> the model

- :class:`BudgetedModel` refuses a call when the key's budget is spent (calls, or tokens counted
  from the answers' usage), before anything else runs.
- :class:`RetryingModel` retries typed retryable errors (unavailable, timeout, rate limited)
  with exponential backoff and jitter, never past the request's deadline.
- :class:`BreakerModel` refuses calls at once while the circuit is open; only transient
  failures count against it (a rejected request is the caller's fault, not the provider's).
- :class:`DeadlineModel` bounds one attempt by ``timeout`` and by the request's deadline.

Inside a handler, the hop's deadline also bounds every call (:meth:`ChatRequest.within_hop`):
a model call cannot outlive the message it serves, even without a ``timeout`` here.

Example:
    >>> import asyncio
    >>> from govbus.models import ChatRequest, Fail, ModelUnavailableError, ScriptedModel
    >>> from govbus.resilience import RetryPolicy
    >>> flaky = ScriptedModel(script=[Fail(ModelUnavailableError("503")), "recovered"])
    >>> model = govern(flaky, retry=RetryPolicy(3, base_delay=0.0, max_delay=0.0))
    >>> asyncio.run(model.complete(ChatRequest.of("hello"))).content
    'recovered'
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

from govbus.models.errors import ModelTimeoutError
from govbus.models.types import ChatModel, ChatRequest, ChatResponse
from govbus.resilience import Budget, CircuitBreaker, RetryPolicy, is_retryable, retry

Clock = Callable[[], float]


class DeadlineModel:
    """One attempt bounded by ``timeout`` seconds and by the request's deadline.

    The request passed on carries the tighter deadline, so providers and wrappers inside see it.

    Raises:
        ModelTimeoutError: the attempt did not finish in time (also raised without calling the
            model when the deadline has already passed).
    """

    def __init__(self, model: ChatModel, timeout: float, *, clock: Clock = time.monotonic) -> None:
        self.model = model
        self.name = model.name
        self.timeout = timeout
        self._clock = clock

    async def complete(self, request: ChatRequest) -> ChatResponse:
        request = request.within_hop()
        now = self._clock()
        deadline = now + self.timeout
        if request.deadline is not None:
            deadline = min(deadline, request.deadline)
        left = deadline - now
        if left <= 0:
            raise ModelTimeoutError(f"{self.name}: the deadline passed before the call")
        try:
            async with asyncio.timeout(left):
                return await self.model.complete(replace(request, deadline=deadline))
        except TimeoutError:
            raise ModelTimeoutError(f"{self.name}: no answer within {left:.3f}s") from None


class BreakerModel:
    """Calls through a :class:`~govbus.resilience.CircuitBreaker`.

    Transient failures (retryable errors, timeouts included) count against the breaker; a
    rejected request releases its permit without a verdict; a success closes a half-open one.

    Raises:
        BreakerOpenError: the circuit is open (or its one half-open probe is in flight).
    """

    def __init__(self, model: ChatModel, breaker: CircuitBreaker) -> None:
        self.model = model
        self.name = model.name
        self.breaker = breaker

    async def complete(self, request: ChatRequest) -> ChatResponse:
        permit = self.breaker.acquire()
        try:
            response = await self.model.complete(request)
        except Exception as exc:
            if is_retryable(exc):
                permit.record_failure()
            else:
                permit.release()
            raise
        except BaseException:
            permit.release()
            raise
        permit.record_success()
        return response


class BudgetedModel:
    """Spends ``key``'s :class:`~govbus.resilience.Budget` per call or per token.

    With a ``calls`` budget one call costs one unit, spent before the call. With a ``tokens``
    budget the call must find some budget left; afterwards the answer's total tokens are spent
    (capped at what is left: the call that crosses the limit completes, the next is refused).

    Raises:
        govbus.errors.BudgetExhaustedError: nothing is left in the window (the model is not
            called).
    """

    def __init__(self, model: ChatModel, budget: Budget, key: str) -> None:
        self.model = model
        self.name = model.name
        self.budget = budget
        self.key = key

    async def complete(self, request: ChatRequest) -> ChatResponse:
        budget, key = self.budget, self.key
        if budget.unit != "tokens":
            budget.spend(key, 1)
            return await self.model.complete(request)
        if budget.remaining(key) <= 0:
            budget.spend(key, 1)  # refused: raises BudgetExhaustedError and fires the alert hook
        response = await self.model.complete(request)
        spent = min(response.usage.total_tokens, budget.remaining(key))
        if spent > 0:
            budget.try_spend(key, spent)
        return response


class RetryingModel:
    """Retries typed retryable errors with :func:`~govbus.resilience.retry`, never starting an
    attempt or a wait that would end past the request's deadline."""

    def __init__(
        self,
        model: ChatModel,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.model = model
        self.name = model.name
        self.policy = policy
        self._sleep = sleep
        self._clock = clock

    async def complete(self, request: ChatRequest) -> ChatResponse:
        request = request.within_hop()
        return await retry(
            lambda: self.model.complete(request),
            self.policy,
            sleep=self._sleep,
            deadline=request.deadline,
            clock=self._clock,
        )


def govern(
    model: ChatModel,
    *,
    timeout: float | None = None,
    breaker: CircuitBreaker | None = None,
    retry: RetryPolicy | None = None,
    budget: Budget | None = None,
    budget_key: str | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> ChatModel:
    """``model`` wrapped with the protections given (see the module docs for the order).

    Args:
        timeout: seconds per attempt.
        breaker: the circuit breaker to call through (share one per agent or provider).
        retry: the retry policy for transient errors.
        budget: the budget to spend; ``budget_key`` (default: the model's name) is whose.
        sleep: how retries wait (tests pass a recorder).
        clock: monotonic seconds, the clock of deadlines.
    """
    wrapped: ChatModel = model
    if timeout is not None:
        wrapped = DeadlineModel(wrapped, timeout, clock=clock)
    if breaker is not None:
        wrapped = BreakerModel(wrapped, breaker)
    if retry is not None:
        wrapped = RetryingModel(wrapped, retry, sleep=sleep, clock=clock)
    if budget is not None:
        wrapped = BudgetedModel(wrapped, budget, budget_key or model.name)
    return wrapped
