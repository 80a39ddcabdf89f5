"""The chat-model protocol and its value types (SPEC section 9).

A :class:`ChatModel` turns a :class:`ChatRequest` (messages, temperature, an optional token cap
and an optional deadline) into a :class:`ChatResponse` (text, the model's name, token usage).
Providers implement it (the deterministic :class:`~govbus.models.ScriptedModel` here; an
OpenAI-compatible HTTP provider comes with the multi-agent issue), and wrappers compose around
any of them, so an agent's model call gets the same protection as the agent itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

from govbus.resilience import hop_deadline

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a model is asked.

    Attributes:
        messages: the conversation so far, oldest first.
        temperature: sampling temperature (0: as deterministic as the provider allows).
        max_tokens: cap on the completion's tokens, or None for the provider's default.
        deadline: ``time.monotonic()`` reading by which the answer is needed, or None. Wrappers
            and providers must not start work they cannot finish before it.
    """

    messages: tuple[ChatMessage, ...]
    temperature: float = 0.0
    max_tokens: int | None = None
    deadline: float | None = None

    @classmethod
    def of(cls, prompt: str, *, system: str | None = None, **kwargs: object) -> ChatRequest:
        """A request with one user message (and an optional system message).

        >>> ChatRequest.of("hi", system="be brief").messages[0].role
        'system'
        """
        turns = ((ChatMessage("system", system),) if system else ()) + (
            ChatMessage("user", prompt),
        )
        return cls(turns, **kwargs)  # type: ignore[arg-type]

    def within_hop(self) -> ChatRequest:
        """This request with its deadline cut to the current hop's, when a handler is running
        under one (:func:`govbus.resilience.hop_deadline`), so a model call made inside a
        handler never outlives the message's deadline. Wrappers and providers call it."""
        end = hop_deadline()
        if end is None or (self.deadline is not None and self.deadline <= end):
            return self
        return replace(self, deadline=end)

    @property
    def prompt(self) -> str:
        """The last user message's text ('' when there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A model's answer."""

    content: str
    model: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: Literal["stop", "length"] = "stop"


@runtime_checkable
class ChatModel(Protocol):
    """Anything that answers chat requests.

    ``name`` is ``"provider/model"`` (as on an agent card). ``complete`` raises the typed errors
    of :mod:`govbus.models.errors`: retryable ones for transient trouble (unavailable, timeout,
    rate limited), :class:`~govbus.models.errors.ModelRejectedError` for a request that will
    never succeed.
    """

    name: str

    async def complete(self, request: ChatRequest) -> ChatResponse: ...
