"""The resilience layer: deadlines (circuit breakers, budgets and retries arrive with issue 5)."""

from govbus.resilience.deadline import HopTimer, hop_budget

__all__ = ["HopTimer", "hop_budget"]
