"""The telemetry layer: trace context helpers (spans and metrics arrive with issue 7)."""

from govbus.telemetry.traceparent import new_traceparent, trace_id

__all__ = ["new_traceparent", "trace_id"]
