"""``GET /metrics``: govbus's counts in the Prometheus text exposition format (0.0.4).

Read straight from the orchestrator's own counters when scraped, like the OpenTelemetry
instruments of :mod:`govbus.telemetry.metrics` (so nothing is counted twice and no exporter
package is needed). Names follow the OpenTelemetry-to-Prometheus conversion of those
instruments (dots become underscores, counters end in ``_total``), plus per-agent series the
inventory adds: status, pause and the four per-agent counters. The handler-duration
histogram is OpenTelemetry-only (give the app a ``MeterProvider`` with a Prometheus reader if
you need it). No series carries payload text: names, check ids, causes and counts only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from govbus.inventory.model import STATUSES, Activity, agent_status, policy_approval
from govbus.orchestrator import App
from govbus.telemetry.metrics import BREAKER_STATES

#: The content type Prometheus expects for this format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_TOTALS: Final = (
    ("govbus_messages_dispatched_total", "dispatched", "Messages that went through policy"),
    ("govbus_messages_allowed_total", "allowed", "Allow decisions, one per recipient"),
    ("govbus_messages_delivered_total", "delivered", "Handlers that finished"),
    ("govbus_failures_total", "failed", "Messages answered with govbus.failed"),
    ("govbus_dead_letters_total", "dead_lettered", "Messages sent to the dead letters"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        # The sample name of a counter keeps its _total suffix; its family name does not.
        family = name.removesuffix("_total") if kind == "counter" else name
        self.lines.append(f"# HELP {family} {help_text}")
        self.lines.append(f"# TYPE {family} {kind}")
        for labels, value in samples:
            number = int(value) if float(value).is_integer() else value
            self.lines.append(f"{name}{_labels(labels)} {number}")


def render(app: App, activity: Activity | None = None) -> str:
    """The exposition of ``app``'s metrics, ending with a newline."""
    orch = app.orchestrator
    counts = orch.counters
    out = _Writer()
    for name, key, help_text in _TOTALS:
        out.family(name, "counter", help_text, [({}, counts.get(key, 0))])
    out.family(
        "govbus_messages_denied_total",
        "counter",
        "Deny decisions, by the check that decided",
        sorted(
            ({"check": key.removeprefix("denied:")}, value)
            for key, value in counts.items()
            if key.startswith("denied:")
        ),
    )
    out.family(
        "govbus_fallbacks_total",
        "counter",
        "Messages rerouted to a fallback, by cause",
        sorted(
            ({"cause": key.removeprefix("fallback:")}, value)
            for key, value in counts.items()
            if key.startswith("fallback:")
        ),
    )
    cards = app.registry.cards
    stats = orch.stats
    for field, help_text in (
        ("handled", "Messages handled, per agent"),
        ("denied", "Messages to the agent that the policy denied, per agent"),
        ("fallbacks", "Messages the agent's fallback answered, per agent"),
        ("failures", "Messages answered govbus.failed for the agent, per agent"),
    ):
        out.family(
            f"govbus_agent_{field}_total",
            "counter",
            help_text,
            [
                ({"agent": c.name}, getattr(stats[c.name], field) if c.name in stats else 0)
                for c in cards
            ],
        )
    breakers = orch.breaker_states()
    out.family(
        "govbus_breaker_state",
        "gauge",
        "Circuit breaker per agent: 0 closed, 1 half-open, 2 open",
        [({"agent": c.name}, BREAKER_STATES.get(breakers.get(c.name, "closed"), 0)) for c in cards],
    )
    out.family(
        "govbus_agent_paused",
        "gauge",
        "1 while the kill switch holds the agent",
        [({"agent": c.name}, int(orch.killswitch.is_paused(c.name))) for c in cards],
    )
    current = {c.name: agent_status(app, c.name, activity) for c in cards}
    out.family(
        "govbus_agent_status",
        "gauge",
        "The agent's inventory status: 1 for the current one",
        [
            ({"agent": name, "status": status}, int(status == now))
            for name, now in current.items()
            for status in STATUSES
        ],
    )
    depth = orch.audit_queue_depth()
    if depth is not None:
        out.family(
            "govbus_audit_queue_depth", "gauge", "Audit records waiting for the writer",
            [({}, depth)],
        )  # fmt: skip
    approval, _ = policy_approval(app)
    policy = app.policy
    out.family(
        "govbus_policy_info",
        "gauge",
        "The active policy (always 1)",
        [
            (
                {
                    "name": policy.name,
                    "version": policy.version,
                    "sha256": policy.sha256,
                    "approved": "true" if approval is not None else "false",
                },
                1,
            )
        ],
    )
    return "\n".join(out.lines) + "\n"
