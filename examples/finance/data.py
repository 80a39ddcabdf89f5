"""Fixture portfolios and a simulated market-data feed (deterministic)."""

from __future__ import annotations

from typing import Any

#: account -> holdings. A-400's negative quantity is the "corrupt data" the demo trips on.
PORTFOLIOS: dict[str, list[dict[str, Any]]] = {
    "A-100": [
        {"asset": "EQUITY_GLOBAL", "class": "equity", "quantity": 120, "price": 210.0},
        {"asset": "GOVT_BOND_10Y", "class": "bond", "quantity": 300, "price": 98.5},
        {"asset": "CASH_EUR", "class": "cash", "quantity": 15000, "price": 1.0},
    ],
    "A-200": [
        {"asset": "EQUITY_TECH", "class": "equity", "quantity": 400, "price": 180.0},
        {"asset": "EQUITY_EM", "class": "equity", "quantity": 250, "price": 45.0},
        {"asset": "CASH_EUR", "class": "cash", "quantity": 2000, "price": 1.0},
    ],
    "A-300": [
        {"asset": "GOVT_BOND_5Y", "class": "bond", "quantity": 900, "price": 101.2},
        {"asset": "CASH_EUR", "class": "cash", "quantity": 40000, "price": 1.0},
    ],
    "A-400": [
        {"asset": "EQUITY_GLOBAL", "class": "equity", "quantity": -50, "price": 210.0},
        {"asset": "CASH_EUR", "class": "cash", "quantity": 5000, "price": 1.0},
    ],
}

#: Expected annual return by asset class, used by the forecaster.
EXPECTED_RETURN = {"equity": 0.065, "bond": 0.032, "cash": 0.015}

#: Target allocation for a balanced profile, used by the recommender and the snapshot.
TARGET = {"equity": 0.50, "bond": 0.35, "cash": 0.15}

#: Seconds the simulated market-data feed takes per account. A-300's feed is slow, so the
#: advisor exceeds its 2 s timeout and the snapshot fallback answers.
MARKET_DATA_LATENCY = {"A-300": 3.0}
DEFAULT_MARKET_DATA_LATENCY = 0.01


def allocation(holdings: list[dict[str, Any]]) -> dict[str, float]:
    """Share of portfolio value per asset class (rounded to 4 places)."""
    values: dict[str, float] = {}
    for h in holdings:
        values[h["class"]] = values.get(h["class"], 0.0) + h["quantity"] * h["price"]
    total = sum(values.values()) or 1.0
    return {k: round(v / total, 4) for k, v in sorted(values.items())}


def market_value(holdings: list[dict[str, Any]]) -> float:
    return round(sum(float(h["quantity"]) * float(h["price"]) for h in holdings), 2)
