"""Metric capture for tests: an OpenTelemetry SDK meter provider read on demand."""

from __future__ import annotations

from typing import Any


class MetricCapture:
    """A ``MeterProvider`` for ``App(meter_provider=...)`` whose values a test can read.

    Needs the OpenTelemetry SDK (``pip install opentelemetry-sdk``).

    Example:
        >>> capture = MetricCapture()
        >>> capture.provider.get_meter("demo").create_counter("hits").add(2, {"who": "a"})
        >>> capture.values("hits")
        {(('who', 'a'),): 2}
    """

    def __init__(self) -> None:
        try:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        except ImportError as exc:  # pragma: no cover - the SDK is a dev dependency
            raise ImportError(
                f"MetricCapture needs the OpenTelemetry SDK: pip install opentelemetry-sdk ({exc})"
            ) from None
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def collect(self) -> dict[str, list[Any]]:
        """Collect now: every metric's data points by metric name."""
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def values(self, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        """The current value of each data point of metric ``name``, keyed by its sorted
        attributes (a histogram's value is its count)."""
        points = self.collect().get(name, [])
        return {
            tuple(sorted((p.attributes or {}).items())): getattr(p, "value", None)
            if hasattr(p, "value")
            else p.count
            for p in points
        }
