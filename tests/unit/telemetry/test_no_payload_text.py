"""No payload text, ever, in spans, metrics or logs: a planted secret runs through the demo
(its ordinary requests, a denied one, a degraded one, a failing one) with every span and metric
captured by the SDK's in-memory exporters and every log record captured at DEBUG, and it
appears in none of them."""

from __future__ import annotations

import io
import json
import logging

from govbus import Message
from govbus.examples.finance import SCENARIO, create_app
from govbus.examples.finance.scenario import ADVISOR, CUSTOMER
from govbus.telemetry.logs import configure_logging
from govbus.testing import MetricCapture, SpanCapture

MARKER = "ZEBRA-PLANT-7781"
EMAIL = "plant.7781@example.org"
CARD = "4111111111111111"
NEEDLES = (MARKER, EMAIL, CARD, "plant.7781")


def planted(account: str) -> dict[str, object]:
    return {"account": account, "note": f"{MARKER} mail {EMAIL} card {CARD}"}


async def test_a_planted_secret_reaches_no_span_metric_or_log_line() -> None:
    spans, metrics = SpanCapture(), MetricCapture()
    stream = io.StringIO()
    root = logging.getLogger()
    handler = configure_logging("json", level=logging.DEBUG, handler=logging.StreamHandler(stream))
    app = create_app(audit="memory://")
    app.use_telemetry(tracer_provider=spans.provider, meter_provider=metrics.provider)
    try:
        async with app:
            for step in SCENARIO:  # the demo's own traffic, every outcome
                await app.request(step.message, timeout=10)
            for account in ("A-100", "A-300", "A-400"):  # ok, degraded, partial
                await app.request(
                    Message(type="advisory.request", sender="advisor-portal", actor=ADVISOR,
                            payload=planted(account)),
                    timeout=10,
                )  # fmt: skip
            denied = await app.request(
                Message(type="portfolio.advise", sender="mobile-app", actor=CUSTOMER,
                        payload={**planted("A-100"), "analysis": {}}),
                timeout=10,
            )  # fmt: skip
            assert denied.type == "govbus.denied"
    finally:
        root.removeHandler(handler)

    assert spans.spans and metrics.collect() and stream.getvalue()
    span_text = json.dumps(spans.records()) + repr([s.status.description for s in spans.spans])
    metric_text = repr(metrics.collect())
    log_text = stream.getvalue()
    for needle in NEEDLES:
        assert needle not in span_text, f"{needle} in a span"
        assert needle not in metric_text, f"{needle} in a metric"
        assert needle not in log_text, f"{needle} in a log line"
    # The planted requests were traced and logged, with their trace ids on the log lines.
    lines = [json.loads(line) for line in log_text.splitlines()]
    assert any(line["trace_id"] for line in lines)
