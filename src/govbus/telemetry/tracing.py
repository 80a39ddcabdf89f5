"""Spans for the dispatch path, over an injected OpenTelemetry ``TracerProvider``.

govbus uses only the OpenTelemetry API; the application (or the command line) configures the SDK
and hands its provider in (``App(tracer_provider=...)``). Nothing here touches the global
provider, and without a provider the orchestrator makes no spans at all (no cost on the hop).

One request is one trace, across processes: the W3C ``traceparent`` travels in the message's
metadata, so the span that delivers a message in another process is a child of the span that
dispatched it there. The spans (names follow the OpenTelemetry messaging conventions):

============================  ==========  ====================================================
span                          kind        covers
============================  ==========  ====================================================
``request {type}``            CLIENT      ``App.request``: the whole round trip to the answer
``publish {type}``            PRODUCER    one dispatch: resolve, policy per recipient, publish
``policy {policy name}``      INTERNAL    one policy evaluation (per recipient); one
                                          ``govbus.check`` event per check
``process {agent}``           CONSUMER    one delivery to an agent: idempotency, breaker,
                                          budget, the handler, its outputs
``handle {agent}``            INTERNAL    the agent's handler itself
``fallback {agent}``          INTERNAL    the reroute of a failed message to the fallback
============================  ==========  ====================================================

No span, attribute or event carries payload text: message ids, types, agent names, policy and
check ids and reason *codes* only (a check's reason or an exception's message can quote the
payload, so neither is recorded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from govbus.envelope import TRACEPARENT, TRACESTATE, Message

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

#: Attribute names: the OpenTelemetry messaging conventions, then govbus's own.
SYSTEM: Final = "messaging.system"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
DESTINATION: Final = "messaging.destination.name"
MESSAGE_ID: Final = "messaging.message.id"
CONVERSATION_ID: Final = "messaging.message.conversation_id"
CONSUMER_GROUP: Final = "messaging.consumer.group.name"
SENDER: Final = "govbus.sender"
CLASSIFICATION: Final = "govbus.classification"
RECIPIENT: Final = "govbus.recipient"
RECIPIENTS: Final = "govbus.recipients"
POLICY_NAME: Final = "govbus.policy.name"
POLICY_VERSION: Final = "govbus.policy.version"
POLICY_SHA256: Final = "govbus.policy.sha256"
DECISION: Final = "govbus.decision"
DECIDING_CHECK: Final = "govbus.deciding_check"
CODE: Final = "govbus.code"
AGENT: Final = "govbus.agent"
AGENT_VERSION: Final = "govbus.agent.version"
RISK: Final = "govbus.risk"
ATTEMPT: Final = "govbus.attempt"
OUTCOME: Final = "govbus.outcome"
FALLBACK_CAUSE: Final = "govbus.fallback.cause"
FALLBACK_TO: Final = "govbus.fallback.to"
CHECK_EVENT: Final = "govbus.check"

_PROPAGATOR: Final = TraceContextTextMapPropagator()


class CheckRecord(Protocol):
    """What a ``govbus.check`` event needs of a check result (a policy ``CheckResult``)."""

    @property
    def check_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def code(self) -> str | None: ...
    @property
    def duration_ns(self) -> int: ...


class PolicyIdentity(Protocol):
    """What a span says about the policy (a ``govbus.policy.Policy``)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def sha256(self) -> str: ...


class Tracing:
    """govbus's spans over one ``TracerProvider`` (see the module docs for the span list).

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> tracing = Tracing(TracerProvider())
        >>> msg = Message(type="demo.ping", sender="web")
        >>> with tracing.publish(msg) as span:
        ...     tracing.traceparent(span)[:3]
        '00-'
    """

    __slots__ = ("_tracer",)

    def __init__(self, provider: TracerProvider) -> None:
        self._tracer = provider.get_tracer("govbus")

    # -- context propagation ----------------------------------------------------------------

    @staticmethod
    def remote_parent(message: Message) -> Context | None:
        """The span context the message's ``traceparent`` names (None if it has none)."""
        if TRACEPARENT not in message.metadata:
            return None
        return _PROPAGATOR.extract(message.metadata)

    @staticmethod
    def local_parent(message: Message) -> Context | None:
        """The parent of a span this process starts for ``message``: the span active here if
        there is one (a handler sending, a fallback rerouting, a client request), else the
        message's ``traceparent`` (a message that came from elsewhere)."""
        if trace.get_current_span().get_span_context().is_valid:
            return None  # the current context
        return Tracing.remote_parent(message)

    @staticmethod
    def traceparent(span: Span) -> str:
        """The W3C ``traceparent`` that makes the next hop a child of ``span``."""
        ctx = span.get_span_context()
        return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"

    @staticmethod
    def stamp(span: Span) -> dict[str, str]:
        """Metadata entries (``traceparent``, and ``tracestate`` if any) pointing at ``span``."""
        out = {TRACEPARENT: Tracing.traceparent(span)}
        state = span.get_span_context().trace_state
        if state:
            out[TRACESTATE] = state.to_header()
        return out

    # -- spans --------------------------------------------------------------------------------

    @contextmanager
    def _current(
        self,
        name: str,
        kind: SpanKind,
        parent: Context | None,
        attributes: Callable[[], Mapping[str, Any]],
    ) -> Iterator[Span]:
        """A span made current for the block. Attributes are built only for a span that
        records: an unsampled trace costs little more than passing its context on."""
        span = self._tracer.start_span(name, context=parent, kind=kind)
        if span.is_recording():
            span.set_attributes(attributes())
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
            span.end()

    def request(self, message: Message) -> AbstractContextManager[Span]:
        """``request {type}``: a client's round trip, from dispatch to the answer."""
        return self._current(
            f"request {message.type}",
            SpanKind.CLIENT,
            self.local_parent(message),
            lambda: {**_message_attributes(message), OPERATION_NAME: "request"},
        )

    def publish(self, message: Message) -> AbstractContextManager[Span]:
        """``publish {type}``: one governed dispatch (the policy spans are its children)."""
        return self._current(
            f"publish {message.type}",
            SpanKind.PRODUCER,
            self.local_parent(message),
            lambda: {
                **_message_attributes(message),
                OPERATION_TYPE: "send",
                OPERATION_NAME: "publish",
            },
        )

    def policy(
        self,
        policy: PolicyIdentity,
        recipient: str,
        results: tuple[CheckRecord, ...],
        deciding: CheckRecord | None,
        allowed: bool,
        start_ns: int,
        end_ns: int,
    ) -> None:
        """``policy {name}``: one evaluation, recorded after the fact with its real start and
        end, one ``govbus.check`` event per check that ran (id, kind, outcome, code, ms)."""
        attributes: dict[str, Any] = {
            POLICY_NAME: policy.name,
            POLICY_VERSION: policy.version,
            POLICY_SHA256: policy.sha256,
            RECIPIENT: recipient,
            DECISION: "allow" if allowed else "deny",
        }
        if deciding is not None:
            attributes[DECIDING_CHECK] = deciding.check_id
            if deciding.code is not None:
                attributes[CODE] = deciding.code
        span = self._tracer.start_span(
            f"policy {policy.name}", kind=SpanKind.INTERNAL, attributes=attributes,
            start_time=start_ns,
        )  # fmt: skip
        at = start_ns
        for result in results:
            if result.outcome == "skipped":
                continue
            event: dict[str, Any] = {
                "govbus.check.id": result.check_id,
                "govbus.check.kind": result.kind,
                "govbus.check.outcome": result.outcome,
                "govbus.check.duration_ms": result.duration_ns / 1e6,
            }
            if result.code is not None:
                event["govbus.check.code"] = result.code
            at += result.duration_ns
            span.add_event(CHECK_EVENT, event, timestamp=at)
        span.end(end_time=end_ns)

    def process(self, message: Message, agent: Any, attempt: int) -> AbstractContextManager[Span]:
        """``process {agent}``: one delivery, a child of the span that dispatched it."""
        return self._current(
            f"process {agent.name}",
            SpanKind.CONSUMER,
            self.remote_parent(message),
            lambda: {
                **_message_attributes(message),
                OPERATION_TYPE: "process",
                OPERATION_NAME: "process",
                CONSUMER_GROUP: agent.name,
                AGENT: agent.name,
                AGENT_VERSION: agent.version,
                RISK: str(agent.risk.value),
                ATTEMPT: attempt,
            },
        )

    def begin_handle(self, agent: Any) -> tuple[Span, object]:
        """Start ``handle {agent}`` (the handler call) and make it current; end it with
        :meth:`end_handle` once the outcome is known (a timeout is only known afterwards)."""
        span = self._tracer.start_span(f"handle {agent.name}", kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attributes({AGENT: agent.name, AGENT_VERSION: agent.version})
        return span, otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def end_handle(handling: tuple[Span, object], code: str | None) -> None:
        """End a span from :meth:`begin_handle`, failed with ``code`` unless it is None."""
        span, token = handling
        otel_context.detach(token)  # type: ignore[arg-type]
        if code is not None:
            fail(span, code)
        span.end()

    def fallback(self, agent: Any, cause: str) -> AbstractContextManager[Span]:
        """``fallback {agent}``: the failed message rerouted to the agent's fallback."""
        return self._current(
            f"fallback {agent.name}",
            SpanKind.INTERNAL,
            None,
            lambda: {AGENT: agent.name, FALLBACK_TO: agent.fallback, FALLBACK_CAUSE: cause},
        )


def fail(span: Span, code: str) -> None:
    """Mark ``span`` failed with a reason *code* (never an error text: it may quote payload)."""
    span.set_attribute(OUTCOME, code)
    span.set_status(Status(StatusCode.ERROR, code))


def _message_attributes(message: Message) -> Mapping[str, Any]:
    return {
        SYSTEM: "govbus",
        DESTINATION: message.type,
        MESSAGE_ID: message.id,
        CONVERSATION_ID: message.correlation_id or message.id,
        SENDER: message.sender,
        CLASSIFICATION: message.classification.value,
    }
