"""An app for the cross-process trace test: ``intake`` asks ``quoter`` for a quote, each may run
in its own process. Every process captures its spans in memory (the OpenTelemetry SDK's
in-memory exporter) and, when it exits, writes them as JSON to ``$GOVBUS_SPANS_DIR/<pid>.json``.
"""

from __future__ import annotations

import atexit
import json
import os
from pathlib import Path
from typing import Any

from govbus import App, Context, Message
from govbus.testing import SpanCapture


def _dump_at_exit(spans: SpanCapture) -> None:
    folder = os.environ.get("GOVBUS_SPANS_DIR")
    if not folder:
        return

    def dump() -> None:
        path = Path(folder) / f"{os.getpid()}.json"
        path.write_text(json.dumps(spans.records()))

    atexit.register(dump)


def create_app(
    *,
    bus: Any = None,
    audit: Any = "memory://",
    policy: Any = None,
    spans: SpanCapture | None = None,
) -> App:
    capture = spans or SpanCapture()
    if spans is None:
        _dump_at_exit(capture)
    app = App("traced", bus=bus, audit=audit, policy=policy, tracer_provider=capture.provider)

    @app.agent("intake", handles="quote.ask", timeout=10.0)
    async def intake(msg: Message, ctx: Context) -> Message:
        quote = await ctx.request(ctx.new("quote.get", {"symbol": msg.payload["symbol"]}))
        return ctx.reply("quote.answer", {"quote": quote.payload, "by": os.getpid()})

    @app.agent("quoter", handles="quote.get", timeout=5.0)
    async def quoter(msg: Message, ctx: Context) -> Message:
        return ctx.reply("quote.value", {"price": 101, "by": os.getpid()})

    return app
