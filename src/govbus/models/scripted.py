"""A deterministic chat model for tests, drills and offline runs.

Answers come from, in order: the first *rule* whose regex matches the prompt (the last user
message), the next step of the *script* (consumed in order), or the *default*. A step is a
reply text, a :class:`Reply` with a delay, or a :class:`Fail` that raises a typed model error
(after an optional delay), so a drill can script "slow", "unavailable" or "rejected" answers
without a network.

Example:
    >>> import asyncio
    >>> model = ScriptedModel(rules=[("balance", "Your balance is EUR 1,200.")])
    >>> asyncio.run(model.complete(ChatRequest.of("What is my balance?"))).content
    'Your balance is EUR 1,200.'
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from govbus.models.errors import ModelError, ModelTimeoutError
from govbus.models.types import ChatRequest, ChatResponse, Usage


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer ``text`` after ``delay`` seconds."""

    text: str
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise ``error`` (a model error instance) after ``delay`` seconds."""

    error: ModelError
    delay: float = 0.0


Step: TypeAlias = str | Reply | Fail


def count_tokens(text: str) -> int:
    """Whitespace-separated words: the scripted model's stand-in for a tokenizer."""
    return len(text.split())


class ScriptedModel:
    """A :class:`~govbus.models.ChatModel` that follows a script (see the module docs).

    Args:
        name: ``"provider/model"``, as an agent card names it.
        rules: ``(regex, step)`` pairs, tried in order against the prompt (case-insensitive).
        script: steps used one per call, in order, when no rule matches.
        default: the step once the script is used up.
        sleep: the sleep function (tests pass a fake one); delays honour the request deadline.

    Attributes:
        calls: every request received, in order.

    Raises:
        re.error: a rule's regex does not compile (at construction).
    """

    def __init__(
        self,
        name: str = "scripted/default",
        *,
        rules: Sequence[tuple[str, Step]] = (),
        script: Sequence[Step] = (),
        default: Step = "OK",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._rules = tuple((re.compile(pattern, re.IGNORECASE), step) for pattern, step in rules)
        self._script = list(script)
        self._default = default
        self._sleep = sleep
        self._clock = clock
        self.calls: list[ChatRequest] = []

    def _step(self, prompt: str) -> Step:
        for pattern, step in self._rules:
            if pattern.search(prompt):
                return step
        if self._script:
            return self._script.pop(0)
        return self._default

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Answer ``request`` by the script; raise the scripted error, or
        :class:`~govbus.models.errors.ModelTimeoutError` when a delay would cross the deadline.
        """
        request = request.within_hop()
        self.calls.append(request)
        step = self._step(request.prompt)
        delay = step.delay if isinstance(step, Reply | Fail) else 0.0
        if delay > 0:
            if request.deadline is not None:
                left = request.deadline - self._clock()
                if delay > left:
                    await self._sleep(max(0.0, left))
                    raise ModelTimeoutError(f"{self.name}: no answer within the deadline")
            await self._sleep(delay)
        if isinstance(step, Fail):
            raise step.error
        text = step.text if isinstance(step, Reply) else step
        prompt_tokens = sum(count_tokens(m.content) for m in request.messages)
        completion = count_tokens(text)
        if request.max_tokens is not None and completion > request.max_tokens:
            text = " ".join(text.split()[: request.max_tokens])
            return ChatResponse(text, self.name, Usage(prompt_tokens, request.max_tokens), "length")
        return ChatResponse(text, self.name, Usage(prompt_tokens, completion))
