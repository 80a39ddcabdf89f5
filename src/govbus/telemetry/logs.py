"""Structured logging: every log line carries the trace and correlation ids of the message
being handled, as text or as one JSON object per line.

The orchestrator marks the message it is delivering (:data:`CURRENT_MESSAGE`, a context
variable, so concurrent handlers each see their own); :class:`TraceContextFilter` copies its
ids onto every log record made meanwhile, and the trace and span ids of the active OpenTelemetry
span when there is one (else the trace id of the message's ``traceparent``). Log messages
themselves never include payload text: govbus logs ids, types and codes only.

Example:
    >>> import io, json, logging
    >>> stream = io.StringIO()
    >>> handler = logging.StreamHandler(stream)
    >>> _ = configure_logging("json", handler=handler, logger=logging.getLogger("demo"))
    >>> logging.getLogger("demo").warning("agent %s slow", "advisor")
    >>> json.loads(stream.getvalue())["message"]
    'agent advisor slow'
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal

from opentelemetry import trace

from govbus.envelope import TRACEPARENT, Message
from govbus.telemetry.traceparent import trace_id

#: The message the current task is delivering (set by the orchestrator around each delivery).
CURRENT_MESSAGE: ContextVar[Message | None] = ContextVar("govbus_current_message", default=None)

#: Record attributes the filter sets (None when unknown).
CONTEXT_FIELDS: Final = ("trace_id", "span_id", "correlation_id", "message_id")

_TEXT_FORMAT: Final = (
    "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s corr=%(correlation_id)s] %(message)s"
)


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id``, ``span_id``, ``correlation_id`` and ``message_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = CURRENT_MESSAGE.get()
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = f"{span.trace_id:032x}"
            record.span_id = f"{span.span_id:016x}"
        else:
            record.trace_id = (
                trace_id(message.metadata.get(TRACEPARENT)) if message is not None else None
            )
            record.span_id = None
        record.correlation_id = (
            (message.correlation_id or message.id) if message is not None else None
        )
        record.message_id = message.id if message is not None else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the context ids,
    and ``exception`` (its type and traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            line[key] = getattr(record, key, None)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(
    fmt: Literal["text", "json"] = "text",
    *,
    level: int | str = logging.INFO,
    handler: logging.Handler | None = None,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Send ``logger``'s records (default: the root logger) to ``handler`` (default: stderr),
    formatted as ``text`` or ``json``, each with the trace and correlation ids."""
    target = logger or logging.getLogger()
    out = handler or logging.StreamHandler()
    out.addFilter(TraceContextFilter())
    out.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT_FORMAT))
    target.addHandler(out)
    target.setLevel(level)
    return out
