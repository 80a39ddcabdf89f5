"""The alert webhook: a real local HTTP receiver gets every alert as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from govbus.audit import MemoryAuditStore
from govbus.envelope import Message
from govbus.errors import ConfigError
from govbus.orchestrator import Alert, App, webhook
from govbus.registry import Context

from .conftest import policy
from .test_dispatch import ask


class Receiver:
    """A minimal HTTP/1.1 server on a free port that records each POST body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.status = 200
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/alerts"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(f"HTTP/1.1 {self.status} X\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    rec.server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    yield rec
    rec.server.close()
    await rec.server.wait_closed()


async def test_webhook_posts_the_alert_as_json(receiver: Receiver) -> None:
    hook = webhook(receiver.url, app="retail")
    await hook(Alert("fallback", "advisor", "m-1", "timeout", "no answer in 2s"))  # type: ignore[misc]
    assert receiver.bodies == [
        {"kind": "fallback", "agent": "advisor", "message_id": "m-1", "cause": "timeout",
         "detail": "no answer in 2s", "app": "retail"}
    ]  # fmt: skip


async def test_an_app_given_a_url_alerts_on_fallback(receiver: Receiver) -> None:
    app = App("retail", policy=policy(), audit=MemoryAuditStore(), alert=receiver.url)

    @app.agent("advisor", handles="portfolio.advise", timeout=1.0, fallback="snapshot")
    async def advisor(msg: Message, ctx: Context) -> Message:
        raise RuntimeError("provider down")

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"text": "snapshot"})

    try:
        await app.request(ask())
    finally:
        await app.close()
    # The message went to the dead-letter store (the agent gave up on it), then to the fallback.
    assert [(b["kind"], b["agent"], b["cause"]) for b in receiver.bodies] == [
        ("dead_letter", "advisor", "exception"),
        ("fallback", "advisor", "exception"),
    ]


async def test_a_failing_receiver_is_logged_not_raised(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    await webhook(receiver.url)(Alert("failure", "a", "m", "exception", "x"))  # type: ignore[misc]
    assert "answered 500" in caplog.text
    unreachable = webhook("http://127.0.0.1:9/alerts", timeout=0.5)
    await unreachable(Alert("failure", "a", "m", "exception", "x"))  # type: ignore[misc]
    assert "failed" in caplog.text


def test_a_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        webhook("ftp://alerts")
