"""A small app for the distributed chaos tests: one worker agent whose handler takes a while and
appends ``<message id> <pid>`` to the file named by ``GOVBUS_CHAOS_LOG`` when it finishes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from govbus import App, Context, Message


def create_app(*, bus: Any = None, audit: Any = "memory://", policy: Any = None) -> App:
    app = App("chaos", bus=bus, audit=audit, policy=policy)
    log = os.environ.get("GOVBUS_CHAOS_LOG")
    delay = float(os.environ.get("GOVBUS_CHAOS_DELAY", "0.05"))

    @app.agent("crunch", handles="work.item", timeout=5.0, concurrency=4)
    async def crunch(msg: Message, ctx: Context) -> None:
        await asyncio.sleep(delay)
        if log:
            line = f"{msg.payload['n']} {os.getpid()}\n"
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, line.encode())
            os.close(fd)

    return app
