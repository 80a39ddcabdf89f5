"""Evaluate red-team cases against a policy and measure detection and false positives.

Each case is evaluated exactly as the orchestrator evaluates a dispatch: one
:class:`~govbus.policy.CheckInput` (message, recipient card, sender card, clock, a fresh
:class:`~govbus.policy.MessageScan`, cause) through :meth:`Policy.evaluate`. What came out:

- ``got`` is ``deny`` when the policy does not allow the message, ``redact`` when it allows it
  with obligations (redactions or a raised classification), else ``allow``;
- ``checks`` are the ids of the checks that denied (or, in monitor mode, would have).

An attack (``expect: deny``) is *detected* when ``got`` is not ``allow``: a redaction counts,
because the attack did not reach the agent as written. A benign case (``expect: allow``) is a
*false positive* when ``got`` is not ``allow``, for the same reason.

State: all cases run against one policy instance with one clock reading (so results do not
depend on how fast the machine is), and every evaluation gets a fresh message id. A
``rate_limit`` check keeps one token bucket per actor (or sender, or tenant) across the run,
so :class:`TextEnvelope` gives each text case its own actor subject: otherwise the bucket of
one shared subject would run dry after ``burst`` cases and the rest would be denied for their
rate, not their content. Message cases keep the actor they were written with; cases sharing
one share its bucket, in corpus order, like real traffic would.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter_ns
from types import MappingProxyType
from typing import Final, Literal

from govbus.envelope import TRACEPARENT, Actor, Message, new_id
from govbus.policy import Policy
from govbus.policy.cases import check_input
from govbus.redteam.cases import RedteamCase, check_recipients
from govbus.registry.card import AgentCard

__all__ = [
    "DEFAULT_ENVELOPE",
    "Z95",
    "CaseResult",
    "CategoryStats",
    "Got",
    "PolicyInfo",
    "RunReport",
    "SourceStats",
    "TextEnvelope",
    "percentile",
    "run_redteam",
    "summarize",
    "wilson_interval",
]

Got = Literal["allow", "deny", "redact"]

#: The standard normal quantile for a two-sided 95% interval.
Z95: Final = 1.959963984540054

_DENYING: Final = frozenset({"deny", "would_deny"})


@dataclass(frozen=True)
class TextEnvelope:
    """How a text-only case becomes a message (override any field, or subclass :meth:`wrap`).

    The default passes every non-content check of the repository's ``policies/default.yaml``
    (a traced chat message from a client, on behalf of an advisor of the ``retail-eu`` tenant,
    to the low-risk ``intake`` agent), so only the content checks can object to it.

    Attributes:
        message_type: the message type.
        sender: the ``from`` of the message (a client, so no sender card).
        subject: the actor's subject; case number ``n`` is sent as ``<subject>-<n>`` (see
            the module docs: one rate-limit bucket per case).
        roles: the actor's roles.
        tenant: the actor's tenant.
        metadata: the message metadata (a valid W3C ``traceparent`` by default).
        payload_key: the payload key the text is put at.
        recipient: the agent whose card the checks see; no recipient when the runner's cards
            do not hold it.

    Example:
        >>> m = TextEnvelope().wrap("hello", 3)
        >>> (m.type, m.actor.subject, m.payload)
        ('chat.message', 'redteam-user-3', {'text': 'hello'})
    """

    message_type: str = "chat.message"
    sender: str = "redteam-client"
    subject: str = "redteam-user"
    roles: tuple[str, ...] = ("advisor",)
    tenant: str | None = "retail-eu"
    metadata: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(
            {TRACEPARENT: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        ),
        hash=False,  # a mapping proxy is unhashable; the other fields identify the envelope
    )
    payload_key: str = "text"
    recipient: str | None = "intake"

    def wrap(self, text: str, number: int) -> Message:
        """The message carrying ``text`` for text case ``number`` (its own actor subject)."""
        return Message(
            type=self.message_type,
            sender=self.sender,
            actor=Actor(subject=f"{self.subject}-{number}", roles=self.roles, tenant=self.tenant),
            metadata=dict(self.metadata),
            payload={self.payload_key: text},
        )


#: The wrapper :func:`run_redteam` uses unless given another.
DEFAULT_ENVELOPE: Final = TextEnvelope()


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case's outcome.

    Attributes:
        case: the case.
        got: ``deny``, ``redact`` (allowed with obligations) or ``allow``.
        checks: ids of the checks whose outcome was ``deny`` or ``would_deny``.
        latency_ns: the evaluation's duration (building the scan and the input included).
    """

    case: RedteamCase
    got: Got
    checks: tuple[str, ...]
    latency_ns: int

    @property
    def acted(self) -> bool:
        """True when the policy did not let the message through as written."""
        return self.got != "allow"

    @property
    def ok(self) -> bool:
        """An attack detected, or a benign case let through (see :mod:`govbus.redteam.cases`).

        ``expect: deny`` needs a refusal; ``expect: redact`` a redaction or a refusal; a benign
        case must pass unchanged, or be redacted if it says ``pii: true``.
        """
        expect = self.case.expect
        if expect == "deny":
            return self.got == "deny"
        if expect == "redact":
            return self.got != "allow"
        return self.got == "allow" or (self.got == "redact" and self.case.pii)


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """Detection in one attack category.

    Example:
        >>> s = CategoryStats("jailbreak", cases=10, detected=5)
        >>> s.detection_rate, tuple(round(x, 4) for x in s.wilson)
        (0.5, (0.2366, 0.7634))
    """

    name: str
    cases: int
    detected: int

    @property
    def detection_rate(self) -> float:
        return self.detected / self.cases if self.cases else 0.0

    @property
    def wilson(self) -> tuple[float, float]:
        """The Wilson 95% score interval of the detection rate."""
        return wilson_interval(self.detected, self.cases)


@dataclass(frozen=True, slots=True)
class SourceStats:
    """False positives among benign cases (of one source, or pooled)."""

    name: str
    cases: int
    false_positives: int

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.cases if self.cases else 0.0


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """Which policy a run measured."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class RunReport:
    """Everything a run measured.

    Attributes:
        policy: the policy's name, version and sha256.
        results: one per case, in the order run.
        categories: attack categories by name (sorted), mutated ones included.
        benign: benign cases pooled (``name`` is ``"all"``).
        by_source: benign cases by source (sorted).
        latency_p50_us: median evaluation latency, microseconds.
        latency_p99_us: 99th percentile evaluation latency, microseconds.
    """

    policy: PolicyInfo
    results: tuple[CaseResult, ...]
    categories: Mapping[str, CategoryStats]
    benign: SourceStats
    by_source: Mapping[str, SourceStats]
    latency_p50_us: float
    latency_p99_us: float


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` for ``successes`` out of ``n``.

    Unlike the normal approximation it stays inside ``[0, 1]`` and is not empty at 0 or ``n``
    successes, which matters for small categories that detect everything.

    Raises:
        ValueError: ``n`` is not positive or ``successes`` is outside ``0..n``.

    Example:
        >>> tuple(round(x, 4) for x in wilson_interval(10, 10))
        (0.7225, 1.0)
        >>> tuple(round(x, 4) for x in wilson_interval(0, 10))
        (0.0, 0.2775)
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (``0 < q <= 100``) of ascending values; 0 if none.

    Example:
        >>> percentile([1, 2, 3, 4], 50), percentile(list(range(1, 101)), 99)
        (2, 99)
    """
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def run_redteam(
    policy: Policy,
    cases: Sequence[RedteamCase],
    cards: Mapping[str, AgentCard] | None = None,
    *,
    envelope: TextEnvelope = DEFAULT_ENVELOPE,
    now: datetime | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> RunReport:
    """Evaluate every case against ``policy`` and summarise (see the module docs).

    Args:
        policy: the policy under test (its rate-limit state carries across the cases).
        cases: the corpus, mutated variants included.
        cards: agent cards by name: recipients of message cases, senders' cards, and the
            text envelope's recipient.
        envelope: how text-only cases are wrapped into messages.
        now: the clock reading every evaluation sees (default: the time the run starts).
        on_result: called after each case (a progress bar, say).

    Raises:
        CorpusError: a case names a recipient that is not in ``cards`` (before anything runs).
    """
    cards = cards or {}
    check_recipients(cases, cards)
    now = now or datetime.now(UTC)
    text_recipient = cards.get(envelope.recipient) if envelope.recipient is not None else None
    results: list[CaseResult] = []
    texts = 0
    for case in cases:
        if case.message is not None:
            message = case.message.model_copy(update={"id": new_id()})
            recipient = cards[case.recipient] if case.recipient is not None else None
        elif case.text is not None:
            texts += 1
            message = envelope.wrap(case.text, texts)
            recipient = text_recipient
        else:
            raise ValueError(f"{case.where}: case {case.id!r} has neither text nor message")
        start = perf_counter_ns()
        evaluation = policy.evaluate(check_input(message, recipient, cards, now, case.cause))
        elapsed = perf_counter_ns() - start
        got: Got = (
            "deny" if not evaluation.allowed else "redact" if evaluation.obligations else "allow"
        )
        checks = tuple(r.check_id for r in evaluation.results if r.outcome in _DENYING)
        result = CaseResult(case, got, checks, elapsed)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return summarize(PolicyInfo(policy.name, policy.version, policy.sha256), results)


def summarize(policy: PolicyInfo, results: Sequence[CaseResult]) -> RunReport:
    """Per-category detection, per-source false positives and latency percentiles."""
    detected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for result in results:
        counts = (
            detected[result.case.category] if result.case.is_attack else flagged[result.case.source]
        )
        counts[0] += 1
        counts[1] += result.ok if result.case.is_attack else not result.ok
    benign_cases = sum(c for c, _ in flagged.values())
    benign_flagged = sum(f for _, f in flagged.values())
    latencies = sorted(r.latency_ns / 1000 for r in results)
    return RunReport(
        policy=policy,
        results=tuple(results),
        categories={k: CategoryStats(k, *detected[k]) for k in sorted(detected)},
        benign=SourceStats("all", benign_cases, benign_flagged),
        by_source={k: SourceStats(k, *flagged[k]) for k in sorted(flagged)},
        latency_p50_us=percentile(latencies, 50),
        latency_p99_us=percentile(latencies, 99),
    )
