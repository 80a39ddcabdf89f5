"""Metrics of the dispatch path through the OpenTelemetry metrics API, over an injected
``MeterProvider`` (``App(meter_provider=...)``; never the global one).

Counters are *observable*: the orchestrator already counts everything for its own use, and the
SDK reads those counts when it collects, so counting costs the hop nothing extra. Only the
handler duration is recorded per delivery (a histogram cannot be read back from totals).

==================================  ===========  ==========================================
instrument                          unit         attributes
==================================  ===========  ==========================================
``govbus.messages.dispatched``      {message}    (none): messages that went through policy
``govbus.messages.allowed``         {decision}   (none): allow decisions (one per recipient)
``govbus.messages.denied``          {decision}   ``govbus.check``: the deciding check
``govbus.messages.delivered``       {message}    (none): handlers that finished
``govbus.fallbacks``                {message}    ``govbus.fallback.cause``
``govbus.failures``                 {message}    (none): answered ``govbus.failed``
``govbus.dead_letters``             {message}    (none): sent to the dead-letter store
``govbus.agent.handled``            {message}    ``govbus.agent``
``govbus.handler.duration``         s            ``govbus.agent``, ``govbus.outcome``
``govbus.breaker.state``            1            ``govbus.agent``: 0 closed, 1 half-open,
                                                 2 open
``govbus.audit.queue_depth``        {record}     (none): records waiting for the writer
==================================  ===========  ==========================================

No instrument carries payload text: names, codes and counts only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, Protocol

from opentelemetry.metrics import CallbackOptions, Observation

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

#: The value ``govbus.breaker.state`` reports per state name.
BREAKER_STATES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}


class MetricsSource(Protocol):
    """What the metrics read at collection time (the orchestrator provides it)."""

    def metric_counts(self) -> Mapping[str, int]:
        """Totals since start: ``dispatched``, ``allowed``, ``denied:<check>``,
        ``fallback:<cause>``, ``failed``, ``dead_lettered``, ``delivered``, ..."""
        ...

    def agent_handled(self) -> Mapping[str, int]:
        """Handled messages per agent."""
        ...

    def breaker_states(self) -> Mapping[str, str]:
        """Circuit-breaker state name per agent."""
        ...

    def audit_queue_depth(self) -> int | None:
        """Audit records waiting for the writer, when the store knows."""
        ...


_TOTALS: Final = (
    ("govbus.messages.dispatched", "dispatched", "{message}", "Messages that went through policy"),
    ("govbus.messages.allowed", "allowed", "{decision}", "Allow decisions, one per recipient"),
    ("govbus.messages.delivered", "delivered", "{message}", "Handlers that finished"),
    ("govbus.failures", "failed", "{message}", "Messages answered with govbus.failed"),
    ("govbus.dead_letters", "dead_lettered", "{message}", "Messages sent to the dead letters"),
)


class Metrics:
    """govbus's instruments over one ``MeterProvider`` (see the module docs for the list).

    Example:
        >>> from opentelemetry.sdk.metrics import MeterProvider
        >>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        >>> reader = InMemoryMetricReader()
        >>> class Source:
        ...     def metric_counts(self): return {"dispatched": 3, "denied:rbac": 1}
        ...     def agent_handled(self): return {"advisor": 2}
        ...     def breaker_states(self): return {"advisor": "closed"}
        ...     def audit_queue_depth(self): return 0
        >>> metrics = Metrics(MeterProvider(metric_readers=[reader]), Source())
        >>> data = reader.get_metrics_data()
        >>> sorted(m.name for rm in data.resource_metrics for sm in rm.scope_metrics
        ...        for m in sm.metrics)[:3]
        ['govbus.agent.handled', 'govbus.audit.queue_depth', 'govbus.breaker.state']
    """

    __slots__ = ("_duration",)

    def __init__(self, provider: MeterProvider, source: MetricsSource) -> None:
        meter = provider.get_meter("govbus")
        for name, key, unit, description in _TOTALS:
            meter.create_observable_counter(
                name, callbacks=[_total(source, key)], unit=unit, description=description
            )
        meter.create_observable_counter(
            "govbus.messages.denied",
            callbacks=[_by_prefix(source, "denied:", "govbus.check")],
            unit="{decision}",
            description="Deny decisions, by the check that decided",
        )
        meter.create_observable_counter(
            "govbus.fallbacks",
            callbacks=[_by_prefix(source, "fallback:", "govbus.fallback.cause")],
            unit="{message}",
            description="Messages rerouted to a fallback, by cause",
        )
        meter.create_observable_counter(
            "govbus.agent.handled",
            callbacks=[_per_agent(source.agent_handled)],
            unit="{message}",
            description="Messages handled, per agent",
        )
        meter.create_observable_gauge(
            "govbus.breaker.state",
            callbacks=[_breakers(source)],
            unit="1",
            description="Circuit breaker per agent: 0 closed, 1 half-open, 2 open",
        )
        meter.create_observable_gauge(
            "govbus.audit.queue_depth",
            callbacks=[_queue(source)],
            unit="{record}",
            description="Audit records waiting for the writer",
        )
        self._duration = meter.create_histogram(
            "govbus.handler.duration", unit="s", description="Handler run time, per agent"
        )

    def handler_duration(self, agent: str, outcome: str, seconds: float) -> None:
        """Record one handler run."""
        self._duration.record(seconds, {"govbus.agent": agent, "govbus.outcome": outcome})


Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _total(source: MetricsSource, key: str) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(source.metric_counts().get(key, 0))]

    return observe


def _by_prefix(source: MetricsSource, prefix: str, attribute: str) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(count, {attribute: key[len(prefix) :]})
            for key, count in source.metric_counts().items()
            if key.startswith(prefix)
        ]

    return observe


def _per_agent(read: Callable[[], Mapping[str, int]]) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"govbus.agent": agent}) for agent, count in read().items()]

    return observe


def _breakers(source: MetricsSource) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(BREAKER_STATES.get(state, 0), {"govbus.agent": agent})
            for agent, state in source.breaker_states().items()
        ]

    return observe


def _queue(source: MetricsSource) -> Callback:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        depth = source.audit_queue_depth()
        return [] if depth is None else [Observation(depth)]

    return observe
