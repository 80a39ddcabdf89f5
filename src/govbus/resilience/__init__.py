"""The resilience layer: deadlines (circuit breakers, budgets and retries arrive with issue 5)."""

from govbus.resilience.deadline import Guard, Watchdog, hop_budget

__all__ = ["Guard", "Watchdog", "hop_budget"]
