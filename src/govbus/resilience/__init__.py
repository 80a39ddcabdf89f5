"""The resilience layer: deadlines, circuit breakers, budgets, retries, bulkheads, idempotency
and the kill switch.

Each is a small primitive with an injectable clock and no background threads; the orchestrator
composes them per agent.
"""

from govbus.resilience.breaker import BreakerPermit, BreakerState, CircuitBreaker
from govbus.resilience.budget import Budget
from govbus.resilience.bulkhead import Bulkhead
from govbus.resilience.deadline import (
    HOP_DEADLINE,
    Guard,
    Watchdog,
    deadline_scope,
    hop_budget,
    hop_deadline,
    time_left,
)
from govbus.resilience.idempotency import IdempotencyStore, MemoryIdempotencyStore
from govbus.resilience.killswitch import KillSwitch, KillSwitchEvent, PauseMode
from govbus.resilience.retry import RetryPolicy, is_retryable, retry

__all__ = [
    "HOP_DEADLINE",
    "BreakerPermit",
    "BreakerState",
    "Budget",
    "Bulkhead",
    "CircuitBreaker",
    "Guard",
    "IdempotencyStore",
    "KillSwitch",
    "KillSwitchEvent",
    "MemoryIdempotencyStore",
    "PauseMode",
    "RetryPolicy",
    "Watchdog",
    "deadline_scope",
    "hop_budget",
    "hop_deadline",
    "is_retryable",
    "retry",
    "time_left",
]
