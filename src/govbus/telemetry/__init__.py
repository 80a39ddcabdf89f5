"""The telemetry layer: trace context helpers, the spans and the metrics of the dispatch path."""

from govbus.telemetry.metrics import Metrics
from govbus.telemetry.traceparent import new_traceparent, trace_id
from govbus.telemetry.tracing import Tracing

__all__ = ["Metrics", "Tracing", "new_traceparent", "trace_id"]
