"""Agents: a card plus an async handler, in decorator form or class form.

Decorator form (the everyday API, via ``App.agent``)::

    @app.agent("portfolio_advisor", handles="portfolio.advise", risk="high")
    async def advise(msg: Message, ctx: Context) -> Message: ...

Class form::

    class Snapshot(Agent, name="portfolio_snapshot", handles="portfolio.advise"):
        async def handle(self, msg: Message, ctx: Context) -> Message: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol, TypeAlias

from pydantic import ValidationError

from govbus.envelope import Classification, Message
from govbus.errors import InvalidAgentCardError
from govbus.registry.card import AgentCard

HandlerResult: TypeAlias = Message | Sequence[Message] | None


class Context(Protocol):
    """What a handler can do besides returning messages. Implemented by the orchestrator.

    Every message sent through the context is governed like any other: policy, audit,
    fallbacks. Requests are bounded by the incoming message's deadline and the agent's timeout.
    """

    @property
    def message(self) -> Message:
        """The message being handled."""

    @property
    def agent(self) -> AgentCard:
        """The card of the agent handling it."""

    @property
    def deadline(self) -> datetime | None:
        """The incoming message's deadline, if any."""

    def remaining(self) -> float:
        """Seconds left for this handler (timeout and deadline, whichever is sooner)."""

    def reply(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        classification: Classification | str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """Build a reply to the incoming message's sender, from this agent."""

    def new(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        to: str | None = None,
        classification: Classification | str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """Build a message caused by the incoming one, from this agent (``to=None``: by type)."""

    async def send(self, message: Message) -> None:
        """Dispatch ``message`` now (governed), without waiting for any reply."""

    async def request(self, message: Message, *, timeout: float | None = None) -> Message:
        """Dispatch ``message`` and wait for its reply (or a ``govbus.denied``/``failed``)."""

    async def gather(
        self, messages: Sequence[Message], *, timeout: float | None = None
    ) -> list[Message]:
        """Request all ``messages`` in parallel; replies in the same order."""


Handler: TypeAlias = Callable[[Message, Context], Awaitable[HandlerResult]]


def build_card(**fields: Any) -> AgentCard:
    """Validate card fields, raising :class:`InvalidAgentCardError` that names each problem."""
    try:
        return AgentCard(**fields)
    except ValidationError as exc:
        name = fields.get("name", "<unnamed>")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'card'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise InvalidAgentCardError(f"agent {name!r} has an invalid card: {problems}") from None


class Agent:
    """Base class of the class form. Subclass with card fields as class keywords::

    class Echo(Agent, name="echo", handles="echo.*"):
        async def handle(self, msg, ctx):
            return ctx.reply("echo.reply", msg.payload)
    """

    card: ClassVar[AgentCard]

    def __init_subclass__(cls, **card_fields: Any) -> None:
        super().__init_subclass__()
        if card_fields:
            cls.card = build_card(**card_fields)

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        raise NotImplementedError(f"{type(self).__name__} must implement 'async def handle'")

    @property
    def name(self) -> str:
        return self.card.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.card.name!r} handles={list(self.card.handles)}>"


class FunctionAgent(Agent):
    """An agent whose handler is a plain async function (the decorator form)."""

    def __init__(self, card: AgentCard, handler: Handler) -> None:
        if not inspect.iscoroutinefunction(handler):
            raise InvalidAgentCardError(
                f"agent {card.name!r}: handler {getattr(handler, '__name__', handler)!r} must be "
                "an 'async def' function taking (message, context)"
            )
        self.card = card  # type: ignore[misc]  # instance-level card for the function form
        self._handler = handler

    @property
    def handler(self) -> Handler:
        return self._handler

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        return await self._handler(message, ctx)


def agent(name: str, **card_fields: Any) -> Callable[[Handler], FunctionAgent]:
    """Decorator turning an async function into a :class:`FunctionAgent` (not yet registered)."""

    def wrap(handler: Handler) -> FunctionAgent:
        fields = dict(card_fields)
        if "description" not in fields and handler.__doc__:
            fields["description"] = inspect.cleandoc(handler.__doc__).split("\n\n")[0]
        return FunctionAgent(build_card(name=name, **fields), handler)

    return wrap
