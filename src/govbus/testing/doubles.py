"""Public test doubles: a clock you move by hand and an agent that records what it gets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from govbus.envelope import Message
from govbus.registry import Agent, Context, HandlerResult, build_card


class FakeClock:
    """A UTC clock that only moves when told to; pass it as ``App(clock=...)``.

    >>> clock = FakeClock(datetime(2026, 11, 21, tzinfo=UTC))
    >>> clock.advance(90)
    >>> clock().isoformat()
    '2026-11-21T00:01:30+00:00'
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self.now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += timedelta(seconds=seconds)


class RecordingAgent(Agent):
    """An agent that records every message it handles and answers with ``respond``.

    Args:
        name, **card: the agent card (``handles`` is required).
        respond: builds the answer from (message, context); default: a reply of type
            ``<type>.done`` echoing the payload. Return None to answer nothing.

    Example:
        >>> agent = RecordingAgent("echo", handles="echo.*")
        >>> agent.card.name, agent.received
        ('echo', [])
    """

    def __init__(
        self,
        name: str,
        *,
        respond: Callable[[Message, Context], HandlerResult] | None = None,
        **card: Any,
    ) -> None:
        self.card = build_card(name=name, **card)  # type: ignore[misc]  # per-instance card
        self.received: list[Message] = []
        self._respond = respond

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        self.received.append(message)
        if self._respond is not None:
            return self._respond(message, ctx)
        return ctx.reply(f"{message.type}.done", dict(message.payload))
