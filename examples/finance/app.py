"""The advisory assistant's agents, wired into a governed :class:`govbus.App`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from govbus import App, Context, Message
from govbus.audit import AuditStore
from govbus.bus import Bus
from govbus.examples.finance.data import (
    DEFAULT_MARKET_DATA_LATENCY,
    EXPECTED_RETURN,
    MARKET_DATA_LATENCY,
    PORTFOLIOS,
    TARGET,
    allocation,
    market_value,
)
from govbus.models import ChatModel, ChatRequest, ScriptedModel
from govbus.policy import Policy
from govbus.resilience import CircuitBreaker, RetryPolicy

OWNER = "Retail Advisory Platform team"
#: Where every agent of the example runs (the policy keeps personal data in the EU).
REGION = "eu-west"


def default_policy_path() -> Path:
    """``policies/default.yaml``, shipped inside the package as ``govbus/policies``."""
    return Path(__file__).resolve().parents[2] / "policies" / "default.yaml"


#: The model behind the advisor's wording (scripted: the example runs offline).
WRITER_MODEL = "scripted/advice-writer"


def advice_writer() -> ScriptedModel:
    """The deterministic stand-in for the LLM that words the advisor's summary."""
    return ScriptedModel(
        WRITER_MODEL, default="Rebalance gradually, and review again after the next statement."
    )


def create_app(
    *,
    policy: Policy | str | Path | None = None,
    bus: Bus | str | None = None,
    audit: AuditStore | str | None = None,
    advisor_timeout: float = 2.0,
    strict: bool = False,
    model: ChatModel | None = None,
) -> App:
    """Build the example app (agents registered, nothing started).

    ``model`` words the advisor's advice (default :func:`advice_writer`); it is called through
    a 1 s timeout, three attempts with backoff on transient errors, and a circuit breaker.
    """
    app = App(
        "retail-advisory",
        policy=policy if policy is not None else default_policy_path(),
        bus=bus,
        audit=audit,
        strict=strict,
    )
    writer = app.use_model(
        model or advice_writer(),
        timeout=1.0,
        retry=RetryPolicy(3, base_delay=0.05, max_delay=0.2),
        breaker=CircuitBreaker(5, 30.0, name="advice-writer"),
    )

    @app.agent(
        "intake",
        handles="advisory.request",
        description="Validates an advisory request, then asks for an analysis and advice.",
        owner=OWNER,
        region=REGION,
        risk="low",
        clearance="pii",
        timeout=10.0,
    )
    async def intake(msg: Message, ctx: Context) -> Message:
        account = str(msg.payload.get("account", ""))
        if account not in PORTFOLIOS:
            return ctx.reply(
                "advisory.response", {"status": "rejected", "reason": "unknown account"}
            )
        analysis = await ctx.request(ctx.new("portfolio.analyze", {"account": account}))
        if analysis.type != "portfolio.analysis":
            return ctx.reply(
                "advisory.response",
                {"status": "unavailable", "reason": analysis.payload.get("code", "unknown")},
            )
        advice = await ctx.request(
            ctx.new("portfolio.advise", {"account": account, "analysis": analysis.payload})
        )
        return ctx.reply(
            "advisory.response",
            {
                "status": "ok" if advice.type == "portfolio.advice" else "partial",
                "account": account,
                "analysis": analysis.payload,
                "advice": advice.payload,
            },
        )

    @app.agent(
        "portfolio_analyzer",
        handles="portfolio.analyze",
        description="Fans out to forecaster, anomaly detector and recommender in parallel.",
        owner=OWNER,
        region=REGION,
        risk="medium",
        clearance="pii",
        timeout=5.0,
    )
    async def analyze(msg: Message, ctx: Context) -> Message:
        account = msg.payload["account"]
        holdings = PORTFOLIOS[account]
        body = {"account": account, "holdings": holdings}
        forecast, anomalies, recommendation = await ctx.gather(
            [
                ctx.new("forecast.run", body),
                ctx.new("anomaly.scan", body),
                ctx.new("recommendation.draft", body),
            ]
        )
        parts = {"forecast": forecast, "anomalies": anomalies, "recommendation": recommendation}
        missing = {
            name: m.payload.get("code") for name, m in parts.items() if m.type.startswith("govbus.")
        }
        return ctx.reply(
            "portfolio.analysis",
            {
                "account": account,
                "market_value": market_value(holdings),
                "allocation": allocation(holdings),
                **{name: m.payload for name, m in parts.items() if name not in missing},
                "missing": missing,
            },
        )

    @app.agent(
        "forecaster",
        handles="forecast.run",
        description="Projects one-year value from expected returns per asset class.",
        owner=OWNER,
        region=REGION,
        risk="medium",
        timeout=2.0,
    )
    async def forecast(msg: Message, ctx: Context) -> Message:
        await asyncio.sleep(0.05)  # a stage with real latency: gather runs the three in parallel
        holdings = msg.payload["holdings"]
        value = market_value(holdings)
        growth = sum(
            h["quantity"] * h["price"] * EXPECTED_RETURN.get(h["class"], 0.0) for h in holdings
        )
        return ctx.reply("forecast.result", {"one_year_value": round(value + growth, 2)})

    @app.agent(
        "anomaly_detector",
        handles="anomaly.scan",
        description="Flags impossible or suspicious holdings; raises on corrupt data.",
        owner=OWNER,
        region=REGION,
        risk="medium",
        timeout=2.0,
    )
    async def scan(msg: Message, ctx: Context) -> Message:
        await asyncio.sleep(0.05)
        for h in msg.payload["holdings"]:
            if h["quantity"] < 0:
                raise ValueError(f"holding {h['asset']} has a negative quantity")
        return ctx.reply("anomaly.result", {"flags": []})

    @app.agent(
        "recommender",
        handles="recommendation.draft",
        description="Suggests rebalancing toward the balanced target allocation.",
        owner=OWNER,
        region=REGION,
        risk="medium",
        timeout=2.0,
    )
    async def recommend(msg: Message, ctx: Context) -> Message:
        await asyncio.sleep(0.05)
        return ctx.reply("recommendation.result", {"moves": _moves(msg.payload["holdings"])})

    @app.agent(
        "portfolio_advisor",
        handles="portfolio.advise",
        description="Writes personalised advice using live market data and an LLM (high risk).",
        owner=OWNER,
        region=REGION,
        risk="high",
        clearance="pii",
        model=writer.name,
        timeout=advisor_timeout,
        fallback="portfolio_snapshot",
    )
    async def advise(msg: Message, ctx: Context) -> Message:
        account = msg.payload["account"]
        await asyncio.sleep(MARKET_DATA_LATENCY.get(account, DEFAULT_MARKET_DATA_LATENCY))
        moves = msg.payload["analysis"].get("recommendation", {}).get("moves", [])
        text = "; ".join(moves) or "Portfolio is close to target; no change suggested."
        # The model sees the moves only, never the account or the holdings; a model error that
        # survives the retries propagates, and the deterministic snapshot answers instead.
        wording = await writer.complete(
            ChatRequest.of(f"Word this rebalancing advice for a retail client: {text}")
        )
        return ctx.reply(
            "portfolio.advice",
            {
                "summary": text,
                "note": wording.content,
                "rationale": "target allocation and current market data",
            },
        )

    @app.agent(
        "portfolio_snapshot",
        handles="portfolio.snapshot",
        description="Deterministic fallback: advice from the last end-of-day snapshot.",
        owner=OWNER,
        region=REGION,
        risk="low",
        clearance="pii",
        timeout=1.0,
    )
    async def snapshot(msg: Message, ctx: Context) -> Message:
        moves = _moves(PORTFOLIOS[msg.payload["account"]])
        return ctx.reply(
            "portfolio.advice",
            {
                "summary": "; ".join(moves) or "No change suggested (end-of-day snapshot).",
                "rationale": "end-of-day snapshot; live market data unavailable",
            },
        )

    return app


def _moves(holdings: list[dict[str, Any]]) -> list[str]:
    current = allocation(holdings)
    moves = []
    for asset_class, target in TARGET.items():
        gap = round(target - current.get(asset_class, 0.0), 2)
        if abs(gap) >= 0.05:
            verb = "increase" if gap > 0 else "reduce"
            moves.append(f"{verb} {asset_class} by {abs(gap):.0%}")
    return moves
