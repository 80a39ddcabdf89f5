"""The metrics exposition parses as Prometheus text, and label values are escaped."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

import govbus
from govbus.inventory import prometheus
from govbus.policy import parse_policy

AWKWARD = 'desk "A"\\north'


def test_label_values_with_quotes_and_backslashes_round_trip() -> None:
    policy = parse_policy(
        "apiVersion: govbus/v1\nkind: Policy\n"
        f"metadata: {{name: desk, version: '{AWKWARD}'}}\nspec: {{checks: []}}\n"
    )
    assert policy.version == AWKWARD
    app = govbus.App("x", policy=policy, audit="memory://")
    text = prometheus.render(app)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = families["govbus_policy_info"].samples
    assert sample.labels["version"] == AWKWARD and sample.labels["approved"] == "false"
    assert families["govbus_messages_dispatched"].type == "counter"
    assert families["govbus_breaker_state"].type == "gauge"


def test_every_agent_has_exactly_one_current_status() -> None:
    app = govbus.App("x", audit="memory://")

    @app.agent("a", handles="a.*")
    async def a(msg: govbus.Message, ctx: govbus.Context) -> None:
        return None

    families = {f.name: f for f in text_string_to_metric_families(prometheus.render(app))}
    values = {s.labels["status"]: s.value for s in families["govbus_agent_status"].samples}
    assert values == {"healthy": 1, "degraded": 0, "circuit_open": 0, "paused": 0}
