"""Small apps for the distributed chaos tests.

* :func:`create_app`: one worker agent (``crunch``) whose handler takes a while and appends
  ``<n> <pid>`` to the file named by ``GOVBUS_CHAOS_LOG`` when it finishes (chaos test 1, run
  in ``govbus worker`` processes).
* :func:`create_reply_app`: one agent (``answer``) that answers every ``work.ask`` request with
  ``work.answer``, and reports each handler invocation to ``handled`` before it answers
  (chaos test 2, in process).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
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


def create_reply_app(
    *,
    bus: Any = None,
    audit: Any = "memory://",
    policy: Any = None,
    name: str = "chaos",
    delay: float = 0.002,
    handled: Callable[[Message], None] | None = None,
) -> App:
    """An app whose agent ``answer`` replies ``work.answer`` with the request's ``n``.

    ``handled(message)`` is called once per handler invocation, before the handler's work (a
    short sleep) and its answer, so a message handled twice is counted twice even if the
    second invocation did not finish.
    """
    app = App(name, bus=bus, audit=audit, policy=policy)

    @app.agent("answer", handles="work.ask", timeout=10.0, concurrency=32)
    async def answer(msg: Message, ctx: Context) -> Message:
        if handled is not None:
            handled(msg)
        await asyncio.sleep(delay)
        return ctx.reply("work.answer", {"n": msg.payload["n"]})

    return app
