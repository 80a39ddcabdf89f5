"""Retail-banking advisory assistant: the example pipeline ``govbus run`` executes.

Agents (all deterministic, no LLM needed)::

    web -> intake --portfolio.analyze--> portfolio_analyzer
             |                            |-- forecast.run ---------> forecaster
             |                            |-- anomaly.scan ---------> anomaly_detector
             |                            '-- recommendation.draft -> recommender
             '--portfolio.advise--> portfolio_advisor (high risk, 2 s timeout)
                                      '-- fallback: portfolio_snapshot
"""

from govbus.examples.finance.app import create_app
from govbus.examples.finance.scenario import SCENARIO, Step

__all__ = ["SCENARIO", "Step", "create_app"]
