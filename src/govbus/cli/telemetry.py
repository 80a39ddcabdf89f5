"""OpenTelemetry SDK set-up for the command line (``--trace``, ``--log-format``, ``OTEL_*``).

The library uses the OpenTelemetry API only; the SDK and exporters are configured here, for the
processes the command line starts (``govbus run``, ``govbus worker``). The standard variables
apply: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (the resource),
``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG`` (sampling), ``OTEL_EXPORTER_OTLP_ENDPOINT``
and the other ``OTEL_EXPORTER_OTLP_*`` (where OTLP goes), ``OTEL_TRACES_EXPORTER`` and
``OTEL_METRICS_EXPORTER`` (``console``, ``otlp`` or ``none``; ``--trace`` wins for traces).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from govbus.errors import ConfigError
from govbus.orchestrator import App
from govbus.telemetry.logs import configure_logging

EXPORTERS = ("console", "otlp", "none")


@dataclass
class Telemetry:
    """The providers made for this process, and how to flush them at exit."""

    tracer_provider: Any = None
    meter_provider: Any = None
    _shutdown: list[Callable[[], object]] = field(default_factory=list)

    def install(self, app: App) -> None:
        """Hand the providers to ``app`` (before it starts)."""
        app.use_telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def shutdown(self) -> None:
        """Flush and stop the exporters (spans still buffered are sent)."""
        for stop in self._shutdown:
            stop()


def setup_telemetry(
    trace: str | None = None,
    *,
    log_format: str | None = None,
    log_level: str = "INFO",
    service: str = "govbus",
) -> Telemetry:
    """Providers for ``--trace`` (else ``OTEL_TRACES_EXPORTER``) and ``OTEL_METRICS_EXPORTER``,
    and logging for ``--log-format`` (``text`` or ``json``, on stderr).

    Raises:
        ConfigError: an unknown exporter name, or ``otlp`` without the ``otel`` extra.
    """
    if log_format is not None:
        configure_logging(log_format, level=log_level.upper())  # type: ignore[arg-type]
    telemetry = Telemetry()
    traces = trace or os.environ.get("OTEL_TRACES_EXPORTER", "none")
    metrics = os.environ.get("OTEL_METRICS_EXPORTER", "none")
    for name, value in (("traces", traces), ("metrics", metrics)):
        if value not in EXPORTERS:
            raise ConfigError(f"unknown {name} exporter {value!r}: expected {', '.join(EXPORTERS)}")
    if traces == "none" and metrics == "none":
        return telemetry
    try:
        from opentelemetry.sdk.resources import Resource
    except ImportError as exc:
        raise ConfigError(
            f"tracing and metrics need the OpenTelemetry SDK: pip install 'govbus[otel]' ({exc})"
        ) from None
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override this default name.
    resource = Resource.create({"service.name": service})
    if traces != "none":
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_*
        provider.add_span_processor(BatchSpanProcessor(_span_exporter(traces)))
        telemetry.tracer_provider = provider
        telemetry._shutdown.append(provider.shutdown)
    if metrics != "none":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(_metric_exporter(metrics))
        meters = MeterProvider(resource=resource, metric_readers=[reader])
        telemetry.meter_provider = meters
        telemetry._shutdown.append(meters.shutdown)
    logging.getLogger("govbus.cli").debug("telemetry: traces=%s metrics=%s", traces, metrics)
    return telemetry


def _span_exporter(kind: str) -> Any:
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout carries the command's own output
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(f"--trace otlp needs pip install 'govbus[otel]' ({exc})") from None
    return OTLPSpanExporter()  # endpoint and headers from OTEL_EXPORTER_OTLP_*


def _metric_exporter(kind: str) -> Any:
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stderr)
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise ConfigError(
            f"OTEL_METRICS_EXPORTER=otlp needs pip install 'govbus[otel]' ({exc})"
        ) from None
    return OTLPMetricExporter()
