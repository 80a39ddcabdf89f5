"""The telemetry layer: trace context helpers and the spans of the dispatch path."""

from govbus.telemetry.traceparent import new_traceparent, trace_id
from govbus.telemetry.tracing import Tracing

__all__ = ["Tracing", "new_traceparent", "trace_id"]
