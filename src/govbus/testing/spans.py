"""Span capture for tests: an OpenTelemetry SDK provider that keeps finished spans in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider


class SpanCapture:
    """A ``TracerProvider`` for ``App(tracer_provider=...)`` whose spans a test can read.

    Needs the OpenTelemetry SDK (``pip install opentelemetry-sdk``; govbus itself uses the API
    only).

    Example:
        >>> import asyncio, govbus
        >>> spans = SpanCapture()
        >>> app = govbus.App(audit="memory://", tracer_provider=spans.provider)
        >>> @app.agent("echo", handles="echo.*")
        ... async def echo(msg, ctx):
        ...     return ctx.reply("echo.reply", {})
        >>> async def main():
        ...     async with app:
        ...         await app.request(govbus.Message(type="echo.say", sender="web"))
        >>> asyncio.run(main())
        >>> [s.name for s in spans.spans if s.name.startswith(("request", "process"))]
        ['process echo', 'request echo.say']
        >>> len(spans.trace_ids())
        1
    """

    def __init__(self) -> None:
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )
        except ImportError as exc:  # pragma: no cover - the SDK is a dev dependency
            raise ImportError(
                f"SpanCapture needs the OpenTelemetry SDK: pip install opentelemetry-sdk ({exc})"
            ) from None
        self.exporter = InMemorySpanExporter()
        self.provider: TracerProvider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return tuple(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        """The finished spans whose name starts with ``prefix`` (``"process"``, ...)."""
        return [s for s in self.spans if s.name.startswith(prefix)]

    def trace_ids(self) -> set[str]:
        """The distinct trace ids (32 hex digits) of the finished spans."""
        return {f"{s.context.trace_id:032x}" for s in self.spans if s.context is not None}

    def records(self) -> list[dict[str, Any]]:
        """The spans as plain dicts (name, kind, trace/span/parent ids, attributes, events):
        what a test in another process writes to a file for the parent to compare."""
        out = []
        for s in self.spans:
            assert s.context is not None
            out.append(
                {
                    "name": s.name,
                    "kind": s.kind.name,
                    "trace_id": f"{s.context.trace_id:032x}",
                    "span_id": f"{s.context.span_id:016x}",
                    "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None,
                    "status": s.status.status_code.name,
                    "attributes": dict(s.attributes or {}),
                    "events": [
                        {"name": e.name, "attributes": dict(e.attributes or {})} for e in s.events
                    ],
                }
            )
        return out

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()
