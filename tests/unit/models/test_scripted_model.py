"""The scripted model: rules, script, default, typed failures, deadlines, usage."""

from __future__ import annotations

import re

import pytest

from govbus.models import (
    ChatModel,
    ChatRequest,
    Fail,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
    Reply,
    ScriptedModel,
)

from .support import FakeTime


def test_it_is_a_chat_model() -> None:
    assert isinstance(ScriptedModel(), ChatModel)


async def test_rules_then_script_then_default() -> None:
    model = ScriptedModel(
        rules=[("balance", "EUR 1,200")], script=["first", Reply("second")], default="done"
    )
    answers = [
        (await model.complete(ChatRequest.of(prompt))).content
        for prompt in ("hello", "my BALANCE?", "hello", "hello", "hello")
    ]
    assert answers == ["first", "EUR 1,200", "second", "done", "done"]
    assert [r.prompt for r in model.calls][1] == "my BALANCE?"


async def test_a_scripted_failure_raises_its_typed_error() -> None:
    model = ScriptedModel(
        script=[Fail(ModelUnavailableError("503")), Fail(ModelRejectedError("400 bad request"))]
    )
    with pytest.raises(ModelUnavailableError) as info:
        await model.complete(ChatRequest.of("x"))
    assert info.value.retryable and info.value.code == "model_unavailable"
    with pytest.raises(ModelRejectedError) as rejected:
        await model.complete(ChatRequest.of("x"))
    assert not rejected.value.retryable


async def test_a_delay_that_would_cross_the_deadline_times_out_at_the_deadline() -> None:
    time = FakeTime(100.0)
    model = ScriptedModel(script=[Reply("late", delay=5.0)], sleep=time.sleep, clock=time.clock)
    with pytest.raises(ModelTimeoutError):
        await model.complete(ChatRequest.of("x", deadline=time.now + 2.0))
    assert time.slept == [2.0]  # waited until the deadline, not for the whole delay


async def test_a_delay_within_the_deadline_answers() -> None:
    time = FakeTime(100.0)
    model = ScriptedModel(script=[Reply("ok", delay=1.5)], sleep=time.sleep, clock=time.clock)
    answer = await model.complete(ChatRequest.of("x", deadline=time.now + 2.0))
    assert answer.content == "ok" and time.slept == [1.5]


async def test_usage_counts_words_and_max_tokens_truncates() -> None:
    model = ScriptedModel(default="one two three four")
    answer = await model.complete(ChatRequest.of("a b", system="c"))
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)
    short = await model.complete(ChatRequest.of("a", max_tokens=2))
    assert (short.content, short.finish_reason, short.usage.total_tokens) == (
        "one two",
        "length",
        3,
    )


def test_a_bad_rule_regex_fails_at_construction() -> None:
    with pytest.raises(re.error):
        ScriptedModel(rules=[("(", "x")])
