"""Spans of the dispatch path: one trace per request, parent links, policy events, no payload."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from govbus.audit import MemoryAuditStore
from govbus.envelope import TRACEPARENT, Actor, Message
from govbus.orchestrator import DENIED, App
from govbus.registry import Context
from govbus.telemetry import trace_id
from govbus.testing import SpanCapture

from .conftest import policy

ADVISOR = Actor(subject="u-1", roles=("advisor",))
SECRET = "4111 1111 1111 1111 / jane.doe@example.com"


@pytest.fixture
def spans() -> SpanCapture:
    return SpanCapture()


@pytest.fixture
async def app(spans: SpanCapture) -> AsyncIterator[App]:
    application = App(
        "traced",
        policy=policy(),
        audit=MemoryAuditStore(),
        default_timeout=5.0,
        tracer_provider=spans.provider,
    )

    @application.agent("intake", handles="portfolio.advise", timeout=2.0)
    async def intake(msg: Message, ctx: Context) -> Message:
        quote = await ctx.request(ctx.new("quote.get", {"account": msg.payload.get("account")}))
        return ctx.reply("portfolio.advice", {"quote": quote.payload})

    @application.agent("quoter", handles="quote.get", fallback="stale_quote", timeout=1.0)
    async def quoter(msg: Message, ctx: Context) -> Message:
        if msg.payload.get("account") == "broken":
            raise RuntimeError(f"upstream said no for {SECRET}")
        return ctx.reply("quote.value", {"price": 101})

    @application.agent("stale_quote", handles="quote.stale")
    async def stale(msg: Message, ctx: Context) -> Message:
        return ctx.reply("quote.value", {"price": 99})

    yield application
    await application.close()


def by_id(spans: SpanCapture) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans.spans if s.context is not None}


def parent(span: ReadableSpan, index: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return index.get(span.parent.span_id) if span.parent is not None else None


def chain(span: ReadableSpan, index: dict[int, ReadableSpan]) -> list[str]:
    """Span names from ``span`` up to its root."""
    names = [span.name]
    up = parent(span, index)
    while up is not None:
        names.append(up.name)
        up = parent(up, index)
    return names


async def test_a_request_across_two_agents_is_one_trace_with_linked_spans(
    app: App, spans: SpanCapture
) -> None:
    reply = await app.request(
        Message(type="portfolio.advise", sender="web", actor=ADVISOR, payload={"account": "A"})
    )
    assert reply.payload == {"quote": {"price": 101}}
    assert len(spans.trace_ids()) == 1
    index = by_id(spans)
    (root,) = [s for s in spans.spans if s.parent is None]
    assert root.name == "request portfolio.advise"
    assert root.kind is SpanKind.CLIENT
    assert root.attributes is not None and root.attributes["govbus.outcome"] == "ok"
    (quoter,) = spans.named("handle quoter")
    # The sub-request's handler hangs under the intake handler that asked for it.
    assert chain(quoter, index) == [
        "handle quoter",
        "process quoter",
        "publish quote.get",
        "handle intake",
        "process intake",
        "publish portfolio.advise",
        "request portfolio.advise",
    ]
    (process,) = spans.named("process intake")
    assert process.kind is SpanKind.CONSUMER
    attrs = process.attributes or {}
    assert attrs["messaging.consumer.group.name"] == "intake"
    assert attrs["govbus.outcome"] == "ok"
    assert attrs["messaging.destination.name"] == "portfolio.advise"
    # Every span of the trace has its parent in the trace (no dangling links).
    assert all(s.parent is None or s.parent.span_id in index for s in spans.spans)


async def test_the_policy_span_has_one_event_per_check_that_ran(
    app: App, spans: SpanCapture
) -> None:
    await app.request(
        Message(type="portfolio.advise", sender="web", actor=ADVISOR, payload={"account": "A"})
    )
    evaluations = spans.named("policy test-policy")
    assert {(s.attributes or {})["govbus.recipient"] for s in evaluations} >= {"intake", "quoter"}
    first = next(s for s in evaluations if (s.attributes or {})["govbus.recipient"] == "intake")
    assert (first.attributes or {})["govbus.decision"] == "allow"
    assert (first.attributes or {})["govbus.policy.sha256"] == app.policy.sha256
    events = [dict(e.attributes or {}) for e in first.events]
    assert [e["govbus.check.id"] for e in events] == ["size", "advisors-only"]
    assert all(e["govbus.check.outcome"] == "allow" for e in events)
    assert all(isinstance(e["govbus.check.duration_ms"], float) for e in events)
    assert first.start_time is not None and first.end_time is not None
    assert first.end_time >= first.start_time


async def test_a_denied_message_marks_the_publish_span_with_the_deciding_check(
    app: App, spans: SpanCapture
) -> None:
    customer = Actor(subject="c-1", roles=("customer",))
    reply = await app.request(
        Message(type="portfolio.advise", sender="web", actor=customer, payload={})
    )
    assert reply.type == DENIED
    (publish,) = spans.named("publish portfolio.advise")
    attrs = publish.attributes or {}
    assert attrs["govbus.decision"] == "deny"
    assert attrs["govbus.deciding_check"] == "advisors-only"
    (evaluation,) = spans.named("policy ")
    assert (evaluation.attributes or {})["govbus.code"] == "missing_role"
    assert not spans.named("process ")  # nothing was delivered


async def test_a_failing_handler_marks_its_spans_and_the_fallback_joins_the_trace(
    app: App, spans: SpanCapture
) -> None:
    reply = await app.request(
        Message(type="portfolio.advise", sender="web", actor=ADVISOR, payload={"account": "broken"})
    )
    assert reply.payload == {"quote": {"price": 99}}
    assert len(spans.trace_ids()) == 1
    (handle,) = spans.named("handle quoter")
    assert handle.status.status_code is StatusCode.ERROR
    assert handle.status.description == "exception"
    (fallback,) = spans.named("fallback quoter")
    assert (fallback.attributes or {})["govbus.fallback.cause"] == "exception"
    (stale,) = spans.named("handle stale_quote")
    assert chain(stale, by_id(spans))[:4] == [
        "handle stale_quote",
        "process stale_quote",
        "publish quote.get",
        "fallback quoter",
    ]


async def test_no_span_carries_payload_text_or_error_messages(app: App, spans: SpanCapture) -> None:
    """The handler's exception quotes the payload; spans keep only the reason code."""
    await app.request(
        Message(
            type="portfolio.advise",
            sender="web",
            actor=ADVISOR,
            payload={"account": "broken", "note": SECRET},
        )
    )
    assert spans.spans
    dumped = repr(spans.records()) + repr([s.status.description for s in spans.spans])
    for needle in ("4111", "jane.doe", "upstream said no"):
        assert needle not in dumped


async def test_a_client_traceparent_is_the_parent_of_the_request(
    app: App, spans: SpanCapture
) -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await app.request(
        Message(
            type="portfolio.advise",
            sender="web",
            actor=ADVISOR,
            payload={"account": "A"},
            metadata={TRACEPARENT: upstream},
        )
    )
    assert spans.trace_ids() == {trace_id(upstream)}
    (root,) = spans.named("request portfolio.advise")
    assert root.parent is not None and f"{root.parent.span_id:016x}" == "b7ad6b7169203331"


async def test_without_a_tracer_provider_no_span_is_made_and_a_traceparent_still_travels(
    spans: SpanCapture,
) -> None:
    seen: list[Message] = []
    plain = App("plain", policy=policy(), audit=MemoryAuditStore())

    @plain.agent("intake", handles="portfolio.advise")
    async def intake(msg: Message, ctx: Context) -> Message:
        seen.append(msg)
        return ctx.reply("portfolio.advice", {})

    async with plain:
        await plain.request(Message(type="portfolio.advise", sender="web", actor=ADVISOR))
    assert plain.orchestrator.tracing is None
    assert trace_id(seen[0].metadata[TRACEPARENT]) is not None
    assert not spans.spans
