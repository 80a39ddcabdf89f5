"""Policy replay and shadow reports: what a candidate policy would have decided on recorded traffic.

Two ways to try a policy change before enforcing it, both read from the audit log:

- :func:`replay_policy` rebuilds each recorded decision's message from its decision record
  (columns, ``envelope`` and, with ``full`` or ``redacted`` payload storage, ``payload``),
  evaluates the candidate for the same recipient at the same time, and compares the outcome
  check by check with what the enforced policy recorded. Checks are matched by id.
- :func:`shadow_report` summarises the ``shadow`` records an orchestrator writes while it
  evaluates a candidate beside the enforced policy on live traffic (``shadow=``): one record
  per decision whose outcome differs, over the decisions made while the candidate shadowed.

A check can only be replayed on a record that holds what the check reads
(:data:`govbus.policy.replayable.KIND_REPLAY`). A check that cannot be replayed on a record is
left out of that record's comparison on both sides: the decision is compared on the remaining
checks, and the report counts such decisions and says, per check, why it was not replayed.
Nothing in a report holds payload text: only check ids, outcomes, reason codes, counts and
example message ids.

Example:
    >>> from datetime import UTC, datetime
    >>> from govbus.audit import AuditRecord
    >>> from govbus.policy import parse_policy
    >>> candidate = parse_policy('''
    ... apiVersion: govbus/v1
    ... kind: Policy
    ... metadata: {name: stricter, version: "2"}
    ... spec:
    ...   checks:
    ...     - {id: who, use: rbac, rules: [{types: ["*"], roles: [advisor]}]}
    ... ''')
    >>> record = AuditRecord(
    ...     node="n1", seq=1, ts=datetime(2026, 11, 2, tzinfo=UTC), kind="decision",
    ...     outcome="allow", message_id="m-1", correlation_id="m-1", msg_type="portfolio.advise",
    ...     sender="web", recipient="advisor", policy_sha256="ab" * 32,
    ...     data={"policy": "p", "policy_version": "1", "checks": {"who": "allow"},
    ...           "classification": "internal", "payload_storage": "hash",
    ...           "envelope": {"to": None, "actor": {"subject": "c", "roles": ["customer"],
    ...                        "tenant": None}, "metadata": {}, "deadline": None,
    ...                        "causation_id": None, "created_at": "2026-11-02T00:00:00Z"}},
    ...     prev_hash="0" * 64, hash="1" * 64)
    >>> report = replay_policy([record], candidate, {})
    >>> report.verdicts["allow->deny"], report.checks[0].transitions[0].examples
    (1, ('m-1',))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias

from govbus.audit import AuditRecord
from govbus.envelope import Actor, Classification, Message
from govbus.errors import EnvelopeError
from govbus.policy import CheckInput, CompiledCheck, MessageScan, Policy
from govbus.policy.consent import get_consent_store
from govbus.policy.replayable import KIND_REPLAY, Fact, KindReplay, replay_inputs
from govbus.registry import AgentCard

__all__ = [
    "EXAMPLES",
    "CheckReplay",
    "EnforcedPolicy",
    "PolicyRef",
    "ReplayReport",
    "ShadowCandidate",
    "ShadowCheck",
    "ShadowReport",
    "Tally",
    "Transition",
    "VerdictChange",
    "record_message",
    "replay_policy",
    "shadow_report",
]

#: Example message ids kept per change (ids only: never payload text).
EXAMPLES: Final = 3

#: Payload storage levels of decision records (see the orchestrator's ``payload_storage``).
STORAGE: Final = ("none", "hash", "redacted", "full")

Verdict: TypeAlias = Literal["allow", "deny"]

_NO_ENVELOPE: Final = (
    "not replayable without the envelope (payload storage 'none', or a record written before "
    "envelopes were kept)"
)
_HASHED: Final = "not replayable on hashed payloads (it reads the payload)"
_NO_PAYLOAD: Final = "not replayable without a recorded payload (payload storage 'none')"
_STATE: Final = (
    "not replayable: it depends on state built from all earlier traffic, per process "
    "(token buckets), which no audit record holds"
)
_NO_CAUSE: Final = (
    "not replayable on this record: the record of the message that caused it (an agent's "
    "output answers a cause) is not among the records read, or keeps no envelope"
)
_NO_LEDGER: Final = (
    "not replayable: it checks the consent ledger, and no consent store is configured in this "
    "process (the app factory sets one with govbus.policy.consent.set_consent_store)"
)


def _passes(outcome: str | None) -> bool:
    """A check that is absent, skipped or allowing lets a message through unchanged."""
    return outcome in (None, "allow", "skipped")


# -- report values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRef:
    """A policy as records name it: ``metadata.name``, ``metadata.version`` and its sha256."""

    name: str
    version: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class Tally:
    """How often something happened, with up to :data:`EXAMPLES` example message ids.

    Attributes:
        what: what happened (a reason, or ``before->after``).
        count: how many decisions.
        examples: message ids of the first decisions it happened to.
    """

    what: str
    count: int
    examples: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"what": self.what, "count": self.count, "examples": list(self.examples)}


@dataclass(frozen=True)
class Transition:
    """One way a check's outcome changed, and how often.

    Attributes:
        before: the outcome the enforced policy recorded (None: it had no such check).
        after: the candidate's outcome (None: the candidate has no such check).
        count: decisions where it changed this way.
        examples: example message ids.
        codes: the candidate's reason codes for these outcomes (shadow records carry them;
            replay leaves this empty), code -> count.
    """

    before: str | None
    after: str | None
    count: int
    examples: tuple[str, ...]
    codes: Mapping[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``allow->deny``, with ``absent`` for a missing side."""
        return f"{self.before or 'absent'}->{self.after or 'absent'}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out: dict[str, Any] = {
            "before": self.before,
            "after": self.after,
            "count": self.count,
            "examples": list(self.examples),
        }
        if self.codes:
            out["codes"] = dict(self.codes)
        return out


@dataclass(frozen=True)
class CheckReplay:
    """One check id across the replayed decisions.

    Attributes:
        id: the check id (checks are matched by id between the two policies).
        kind: its kind in the candidate, else as the enforced policy's findings name it.
        in_candidate: the candidate has a check with this id.
        compared: decisions on which this check's outcomes were compared.
        transitions: how its outcome changed, most frequent first.
        decides_now: decisions the candidate denies through this check that the enforced
            policy allowed or denied through another check.
        no_longer_decides: decisions the enforced policy denied through this check that the
            candidate allows or denies through another check.
        not_replayed: decisions on which it could not be replayed, by reason.
    """

    id: str
    kind: str | None
    in_candidate: bool
    compared: int
    transitions: tuple[Transition, ...]
    decides_now: int
    no_longer_decides: int
    not_replayed: tuple[Tally, ...]

    @property
    def changed(self) -> int:
        """Decisions on which this check's outcome changed."""
        return sum(t.count for t in self.transitions)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "kind": self.kind,
            "in_candidate": self.in_candidate,
            "compared": self.compared,
            "changed": self.changed,
            "transitions": [t.as_dict() for t in self.transitions],
            "decides_now": self.decides_now,
            "no_longer_decides": self.no_longer_decides,
            "not_replayed": [t.as_dict() for t in self.not_replayed],
        }


@dataclass(frozen=True)
class VerdictChange:
    """A group of decisions whose verdict, or deciding check, changes the same way.

    Attributes:
        enforced: the verdict recorded (on the checks that could be compared).
        candidate: the candidate's verdict.
        enforced_check: the check that decided a recorded denial.
        candidate_check: the check that decides the candidate's denial.
        count: decisions in the group.
        examples: example message ids.
    """

    enforced: Verdict
    candidate: Verdict
    enforced_check: str | None
    candidate_check: str | None
    count: int
    examples: tuple[str, ...]

    def describe(self) -> str:
        """One line for people, e.g. ``allow -> deny (now decided by advisors-only)``."""
        if self.enforced == "allow":
            return f"allow -> deny (now decided by {self.candidate_check})"
        if self.candidate == "allow":
            return f"deny -> allow (was decided by {self.enforced_check})"
        return f"deny -> deny (decided by {self.candidate_check} instead of {self.enforced_check})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "enforced": self.enforced,
            "candidate": self.candidate,
            "enforced_check": self.enforced_check,
            "candidate_check": self.candidate_check,
            "count": self.count,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class EnforcedPolicy:
    """A policy that was enforced when replayed decisions were recorded, with their count."""

    policy: PolicyRef
    decisions: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**self.policy.as_dict(), "decisions": self.decisions}


@dataclass(frozen=True)
class ReplayReport:
    """What the candidate would have decided on the recorded decisions (:func:`replay_policy`).

    Attributes:
        candidate: the candidate policy.
        since: the window's start (inclusive), if given.
        until: the window's end (exclusive), if given.
        decisions: decision records replayed.
        first: time of the earliest replayed decision.
        last: time of the latest replayed decision.
        enforced: the policies the records were decided under, with counts.
        storage: replayed decisions per payload storage (``none``, ``hash``, ``redacted``,
            ``full``).
        verdicts: ``allow->allow``, ``allow->deny``, ``deny->allow``, ``deny->deny``: recorded
            verdict (on the compared checks) -> candidate verdict.
        changes: verdict changes, and denials now decided by another check, most frequent
            first.
        checks: per check id: the candidate's checks in file order, then checks only the
            enforced policy had.
        partial: decisions compared on a subset of the candidate's checks (some could not be
            replayed on their record).
        masked: recorded denials decided only by checks that could not be replayed, which the
            candidate's replayed checks allow: compared as allowed on both sides. (When the
            candidate's replayed checks deny such a message, it is a certain deny -> deny.)
        unreadable: decision records that could not be rebuilt into a message, by reason.
        unknown_recipients: recipient names not in the app's registry (treated as client
            addresses, without a card), with counts: many suggest the wrong ``--app``.
        raised: outputs the enforced policy let sit below their cause's classification that the
            candidate's declassify rules do not permit: evaluated at the cause's level, as the
            orchestrator would raise them.
        notes: caveats about what replay could and could not see, for people.
        truncated: the limit stopped the replay before the end of the window.
    """

    candidate: PolicyRef
    since: datetime | None
    until: datetime | None
    decisions: int
    first: datetime | None
    last: datetime | None
    enforced: tuple[EnforcedPolicy, ...]
    storage: Mapping[str, int]
    verdicts: Mapping[str, int]
    changes: tuple[VerdictChange, ...]
    checks: tuple[CheckReplay, ...]
    partial: int
    masked: int
    unreadable: tuple[Tally, ...]
    unknown_recipients: Mapping[str, int]
    raised: Tally | None
    notes: tuple[str, ...]
    truncated: bool = False

    @property
    def changed(self) -> int:
        """Decisions whose verdict changes (allow -> deny or deny -> allow)."""
        return self.verdicts.get("allow->deny", 0) + self.verdicts.get("deny->allow", 0)

    def check(self, check_id: str) -> CheckReplay:
        """The entry for ``check_id``; KeyError if no decision mentioned it."""
        for entry in self.checks:
            if entry.id == check_id:
                return entry
        raise KeyError(check_id)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--format json``)."""
        return {
            "candidate": self.candidate.as_dict(),
            "since": _iso(self.since),
            "until": _iso(self.until),
            "decisions": self.decisions,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "truncated": self.truncated,
            "enforced": [e.as_dict() for e in self.enforced],
            "storage": dict(self.storage),
            "verdicts": dict(self.verdicts),
            "changed": self.changed,
            "changes": [c.as_dict() for c in self.changes],
            "checks": [c.as_dict() for c in self.checks],
            "partial": self.partial,
            "masked": self.masked,
            "unreadable": [u.as_dict() for u in self.unreadable],
            "unknown_recipients": dict(self.unknown_recipients),
            "raised": self.raised.as_dict() if self.raised is not None else None,
            "notes": list(self.notes),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


# -- counting helpers ---------------------------------------------------------------------------


class _Tallies:
    """Counts with example message ids, by key, in first-seen order."""

    __slots__ = ("counts", "examples")

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}
        self.examples: dict[Any, list[str]] = {}

    def add(self, key: Any, message_id: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        examples = self.examples.setdefault(key, [])
        if len(examples) < EXAMPLES and message_id not in examples:
            examples.append(message_id)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def ranked(self) -> list[tuple[Any, int, tuple[str, ...]]]:
        """(key, count, examples), most frequent first (ties keep first-seen order)."""
        order = {key: i for i, key in enumerate(self.counts)}
        keys = sorted(self.counts, key=lambda k: (-self.counts[k], order[k]))
        return [(k, self.counts[k], tuple(self.examples[k])) for k in keys]

    def tallies(self) -> tuple[Tally, ...]:
        return tuple(Tally(str(k), n, ex) for k, n, ex in self.ranked())


@dataclass
class _CheckAcc:
    kind: str | None = None
    compared: int = 0
    transitions: _Tallies = field(default_factory=_Tallies)
    decides_now: int = 0
    no_longer_decides: int = 0
    not_replayed: _Tallies = field(default_factory=_Tallies)


# -- rebuilding messages ------------------------------------------------------------------------


def _storage(data: Mapping[str, Any]) -> str:
    """The record's payload storage; records written before it was recorded kept nothing."""
    value = data.get("payload_storage")
    return value if value in STORAGE else "none"


def record_message(record: AuditRecord) -> Message:
    """The message a decision record describes, rebuilt from its columns, ``envelope`` and
    ``payload`` (an empty payload when the record keeps none; no actor, metadata or ``to``
    when it keeps no envelope).

    Raises:
        EnvelopeError: the record does not describe a valid message (naming each bad field).
    """
    data = record.data
    envelope = data.get("envelope")
    env: Mapping[str, Any] = envelope if isinstance(envelope, Mapping) else {}
    payload = data.get("payload") if _storage(data) in ("redacted", "full") else None
    raw: dict[str, Any] = {
        "id": record.message_id,
        "type": record.msg_type,
        "from": record.sender,
        "classification": data.get("classification", Classification.INTERNAL.value),
        "payload": payload if payload is not None else {},
        "correlation_id": record.correlation_id,
        "created_at": env.get("created_at") or record.ts,
    }
    for key in ("to", "actor", "metadata", "deadline", "causation_id"):
        if env.get(key) is not None:
            raw[key] = env[key]
    return Message.from_dict(raw)


# -- replay -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CauseFacts:
    """What checks read of a cause: whether it had an actor, and the actor's tenant."""

    has_actor: bool
    tenant: str | None


class _Replayer:
    """One replay: the candidate split into what each record can replay, and the counts."""

    def __init__(
        self,
        candidate: Policy,
        cards: Mapping[str, AgentCard],
        kinds: Mapping[str, KindReplay],
    ) -> None:
        self.candidate = candidate
        self.cards = cards
        self.kinds = kinds
        self.reads: dict[str, frozenset[Fact] | None] = {
            c.id: replay_inputs(c, kinds) for c in candidate.checks
        }
        self.needs_cause = any("cause" in (r or ()) for r in self.reads.values())
        self.ledger = get_consent_store() is not None
        self.declassifiers = tuple(
            c for c in candidate.checks if c.kind == "declassify" and c.enforcing
        )
        self.restricted: dict[frozenset[str], Policy] = {}
        self.causes: dict[str, _CauseFacts] = {}
        # Tallies.
        self.decisions = 0
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.enforced: dict[str, tuple[PolicyRef, int]] = {}
        self.storage: dict[str, int] = {}
        self.verdicts = {"allow->allow": 0, "allow->deny": 0, "deny->allow": 0, "deny->deny": 0}
        self.changes = _Tallies()
        self.checks: dict[str, _CheckAcc] = {c.id: _CheckAcc(kind=c.kind) for c in candidate.checks}
        self.partial = 0
        self.masked = 0
        self.unreadable = _Tallies()
        self.unknown: dict[str, int] = {}
        self.raised = _Tallies()
        self.redacted_replays: dict[str, int] = {}  # check id -> redacted records replayed
        self.ledger_replays = 0

    # -- the cause index -----------------------------------------------------------------------

    def remember_cause(self, record: AuditRecord) -> None:
        """Index what a later output's checks may read of this message (its actor's tenant)."""
        if record.message_id is None or record.message_id in self.causes:
            return
        envelope = record.data.get("envelope")
        if not isinstance(envelope, Mapping):
            return
        actor = envelope.get("actor")
        tenant = actor.get("tenant") if isinstance(actor, Mapping) else None
        self.causes[record.message_id] = _CauseFacts(
            isinstance(actor, Mapping), tenant if isinstance(tenant, str) else None
        )

    def cause_pending(self, record: AuditRecord) -> bool:
        """True when the record's cause may still turn up later in the records."""
        if not self.needs_cause or self.cards.get(record.sender or "") is None:
            return False
        envelope = record.data.get("envelope")
        causation = envelope.get("causation_id") if isinstance(envelope, Mapping) else None
        return isinstance(causation, str) and causation not in self.causes

    # -- one decision --------------------------------------------------------------------------

    def replay(self, record: AuditRecord) -> None:
        data = record.data
        message_id = record.message_id or f"{record.node}#{record.seq}"
        recorded = data.get("checks")
        if record.outcome not in ("allow", "deny") or not isinstance(recorded, Mapping):
            self.unreadable.add(
                "not a decision record of this format (outcome or checks)", message_id
            )
            return
        try:
            message = record_message(record)
        except EnvelopeError as exc:
            problem = "; ".join(exc.problems) or str(exc)
            self.unreadable.add(
                f"the record does not describe a valid message: {problem}", message_id
            )
            return
        storage = _storage(data)
        self.decisions += 1
        self.storage[storage] = self.storage.get(storage, 0) + 1
        self.first = record.ts if self.first is None or record.ts < self.first else self.first
        self.last = record.ts if self.last is None or record.ts > self.last else self.last
        sha = record.policy_sha256 or "unknown"
        ref, count = self.enforced.get(
            sha,
            (PolicyRef(str(data.get("policy", "?")), str(data.get("policy_version", "?")), sha), 0),
        )
        self.enforced[sha] = (ref, count + 1)

        recipient = self.cards.get(record.recipient) if record.recipient else None
        if recipient is None and record.recipient:
            self.unknown[record.recipient] = self.unknown.get(record.recipient, 0) + 1
        sender = self.cards.get(message.sender)

        facts, cause = self._facts(record, message, sender, storage)
        excluded: dict[str, str] = {}
        for check in self.candidate.checks:
            why = self._why_not(check, facts, storage)
            if why is not None:
                excluded[check.id] = why
                self.checks[check.id].not_replayed.add(why, message_id)
            elif storage == "redacted" and "payload" in (self.reads[check.id] or ()):
                self.redacted_replays[check.id] = self.redacted_replays.get(check.id, 0) + 1
            elif check.kind == "consent" and "ledger" in (self.reads[check.id] or ()):
                self.ledger_replays += 1
        if excluded:
            self.partial += 1

        message = self._declassification(message, sender, cause, excluded, record, message_id)
        policy = self._restricted(frozenset(excluded))
        inp = CheckInput(message, recipient, sender, record.ts, MessageScan(message), cause)
        evaluation = policy.evaluate(inp)
        after = {r.check_id: r.outcome for r in evaluation.results}
        kinds_seen = {
            f.get("id"): f.get("kind")
            for f in data.get("findings") or ()
            if isinstance(f, Mapping) and isinstance(f.get("id"), str)
        }

        # The recorded verdict is a fact. The candidate's is certain when its replayed checks
        # deny (a check left out could only add a denial); when they allow, it is known only on
        # the checks compared, so a recorded denial that came only from checks left out is
        # compared as allowed on both sides ("masked").
        candidate: Verdict = "allow" if evaluation.allowed else "deny"
        candidate_check = evaluation.deciding.check_id if evaluation.deciding else None
        before = {str(k): str(v) for k, v in recorded.items()}
        denied_by = [k for k, v in before.items() if v == "deny" and k not in excluded]
        enforced: Verdict = "deny" if record.outcome == "deny" else "allow"
        masked = not denied_by and any(before.get(k) == "deny" for k in excluded)
        if enforced == "deny" and candidate == "allow" and masked:
            self.masked += 1
            enforced = "allow"
        deciding = data.get("deciding")
        comparable = isinstance(deciding, str) and deciding not in excluded
        enforced_check: str | None = None
        if enforced == "deny":
            enforced_check = deciding if comparable else self._first_in_order(denied_by)
        self.verdicts[f"{enforced}->{candidate}"] += 1
        # A denial decided by another check is a change only when the recorded deciding check
        # was replayed too (otherwise the candidate's own copy of it might still decide).
        moved = candidate == "deny" and comparable and enforced_check != candidate_check
        if enforced != candidate or (enforced == "deny" and moved):
            self.changes.add((enforced, candidate, enforced_check, candidate_check), message_id)
            if candidate_check is not None:
                self._acc(candidate_check, kinds_seen).decides_now += 1
            if enforced_check is not None:
                self._acc(enforced_check, kinds_seen).no_longer_decides += 1

        for check_id in dict.fromkeys([*after, *before]):
            if check_id in excluded:
                continue
            acc = self._acc(check_id, kinds_seen)
            acc.compared += 1
            was, now = before.get(check_id), after.get(check_id)
            if was != now and not (_passes(was) and _passes(now)):
                acc.transitions.add((was, now), message_id)

    def _acc(self, check_id: str, kinds_seen: Mapping[Any, Any]) -> _CheckAcc:
        acc = self.checks.get(check_id)
        if acc is None:
            acc = self.checks[check_id] = _CheckAcc()
        if acc.kind is None and isinstance(kinds_seen.get(check_id), str):
            acc.kind = kinds_seen[check_id]
        return acc

    def _first_in_order(self, check_ids: list[str]) -> str | None:
        order = {c.id: i for i, c in enumerate(self.candidate.checks)}
        ranked = sorted(check_ids, key=lambda c: (order.get(c, len(order)), c))
        return ranked[0] if ranked else None

    def _facts(
        self,
        record: AuditRecord,
        message: Message,
        sender: AgentCard | None,
        storage: str,
    ) -> tuple[set[Fact], Message | None]:
        """What this record holds, and the cause the checks see (None for a client message)."""
        data = record.data
        facts: set[Fact] = set()
        if isinstance(data.get("envelope"), Mapping):
            facts.add("envelope")
        if storage in ("redacted", "full") and isinstance(data.get("payload"), Mapping):
            facts.add("payload")
            if storage == "full":
                facts.add("payload_exact")
        if self.ledger:
            facts.add("ledger")
        cause: Message | None = None
        lowered_from = data.get("declassified_from")
        causation = message.causation_id
        if sender is None or causation is None:
            facts.add("cause")  # a client's message: the orchestrator passes no cause
        else:
            found = self.causes.get(causation)
            if found is not None:
                facts.add("cause")
            cause = _cause(message, causation, found, lowered_from)
        if cause is None and isinstance(lowered_from, str):
            cause = _cause(message, causation or "cause", None, lowered_from)
        return facts, cause

    def _why_not(self, check: CompiledCheck, facts: set[Fact], storage: str) -> str | None:
        """Why ``check`` cannot be replayed on a record holding ``facts``, or None."""
        reads = self.reads[check.id]
        if reads is None:
            return (
                f"not replayable: kind {check.kind!r} has no replay classification "
                "(govbus.policy.replayable.KIND_REPLAY)"
            )
        missing = reads - facts
        if not missing:
            return None
        if "state" in missing:
            return _STATE
        if "envelope" in missing:
            return _NO_ENVELOPE
        if missing & {"payload", "payload_exact"}:
            if storage == "hash":
                return _HASHED
            if storage == "redacted":
                entry = self.kinds.get(check.kind)
                detail = entry.redacted if entry is not None and entry.redacted else "inexact"
                return f"not replayable on redacted payloads: {detail}"
            return _NO_PAYLOAD
        if "cause" in missing:
            return _NO_CAUSE
        return _NO_LEDGER

    def _declassification(
        self,
        message: Message,
        sender: AgentCard | None,
        cause: Message | None,
        excluded: Mapping[str, str],
        record: AuditRecord,
        message_id: str,
    ) -> Message:
        """The message as the candidate's orchestrator would dispatch it.

        An output the enforced policy let sit below its cause (``declassified_from``) is
        raised back to the cause's level unless an enforcing ``declassify`` check of the
        candidate permits it, as the orchestrator does before any check runs.
        """
        if cause is None or sender is None or not message.classification < cause.classification:
            return message
        checks = [c for c in self.declassifiers if c.id not in excluded]
        if len(checks) < len(self.declassifiers):
            return message  # a rule cannot be evaluated here: leave the record as it is
        inp = CheckInput(message, None, sender, record.ts, MessageScan(message), cause)
        for check in checks:
            try:
                if check.when.applies(inp) and check.fn(inp).kind == "allow":
                    return message
            except Exception:  # a broken rule permits nothing, as in the orchestrator
                continue
        self.raised.add("raised", message_id)
        return message.model_copy(update={"classification": cause.classification})

    def _restricted(self, excluded: frozenset[str]) -> Policy:
        """The candidate without the checks that cannot be replayed here (built once per set)."""
        if not excluded:
            return self.candidate
        policy = self.restricted.get(excluded)
        if policy is None:
            checks = tuple(c for c in self.candidate.checks if c.id not in excluded)
            policy = self.restricted[excluded] = dataclasses.replace(self.candidate, checks=checks)
        return policy

    # -- the report ----------------------------------------------------------------------------

    def report(
        self, since: datetime | None, until: datetime | None, truncated: bool
    ) -> ReplayReport:
        candidate = self.candidate
        order = [c.id for c in candidate.checks]
        extra = sorted(k for k in self.checks if k not in set(order))
        checks = tuple(
            CheckReplay(
                id=check_id,
                kind=acc.kind,
                in_candidate=check_id in set(order),
                compared=acc.compared,
                transitions=tuple(
                    Transition(was, now, n, ex) for (was, now), n, ex in acc.transitions.ranked()
                ),
                decides_now=acc.decides_now,
                no_longer_decides=acc.no_longer_decides,
                not_replayed=acc.not_replayed.tallies(),
            )
            for check_id in (*order, *extra)
            for acc in (self.checks[check_id],)
        )
        changes = tuple(
            VerdictChange(e, c, ec, cc, n, ex) for (e, c, ec, cc), n, ex in self.changes.ranked()
        )
        raised = self.raised.tallies()
        return ReplayReport(
            candidate=PolicyRef(candidate.name, candidate.version, candidate.sha256),
            since=since,
            until=until,
            decisions=self.decisions,
            first=self.first,
            last=self.last,
            enforced=tuple(
                EnforcedPolicy(ref, n)
                for ref, n in sorted(self.enforced.values(), key=lambda x: -x[1])
            ),
            storage={s: self.storage[s] for s in STORAGE if s in self.storage},
            verdicts=dict(self.verdicts),
            changes=changes,
            checks=checks,
            partial=self.partial,
            masked=self.masked,
            unreadable=self.unreadable.tallies(),
            unknown_recipients=dict(sorted(self.unknown.items(), key=lambda x: (-x[1], x[0]))),
            raised=raised[0] if raised else None,
            notes=tuple(self._notes()),
            truncated=truncated,
        )

    def _notes(self) -> Iterator[str]:
        if self.partial:
            yield (
                f"{self.partial} of {_count(self.decisions, 'decision was', 'decisions were')} "
                "compared on the remaining "
                "checks only: some checks could not be replayed on their records (see 'not "
                "replayed'), and were left out on both sides."
            )
        if self.masked:
            yield (
                f"{_count(self.masked, 'recorded denial was', 'recorded denials were')} decided "
                "only by checks that could not be replayed, and the candidate's replayed checks "
                f"allow {'it' if self.masked == 1 else 'them'}: compared on the remaining "
                "checks, both sides allow."
            )
        for check in self.candidate.checks:
            replays = self.redacted_replays.get(check.id)
            entry = self.kinds.get(check.kind)
            if replays and entry is not None and entry.redacted:
                yield (
                    f"{check.id} ({check.kind}) was replayed on "
                    f"{_count(replays, 'redacted payload', 'redacted payloads')}, "
                    f"where personal data is replaced by [REDACTED:<entity>] markers: "
                    f"{entry.redacted}."
                )
            if check.kind == "length" and getattr(check.params, "measure", "") == "envelope":
                yield (
                    f"{check.id} (length, measure: envelope) measures the rebuilt envelope, "
                    "which lacks the signature a signing deployment adds."
                )
        if self.ledger_replays:
            ids = ", ".join(
                c.id
                for c in self.candidate.checks
                if c.kind == "consent" and "ledger" in (self.reads[c.id] or ())
            )
            yield (
                f"{ids} (consent) asked the consent ledger as it is now about each record's "
                "time: grants deleted, or recorded late, since then change its answers."
            )
        if self.declassifiers:
            yield (
                "Outputs the enforced policy raised back to their cause's classification are "
                "recorded at the raised level: a lowering only the candidate would permit is "
                "not visible to replay."
            )
        if self.decisions:
            yield (
                "Agent cards (clearance, risk, region, tenant tags) are the app's cards now, "
                "not as they were when the decisions were recorded."
            )


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _cause(
    message: Message, causation: str, found: _CauseFacts | None, lowered_from: Any
) -> Message:
    """A stand-in for the cause, carrying what checks read of one: its id, classification (the
    level a permitted lowering came from, else the output's own) and actor tenant."""
    level = message.classification
    if isinstance(lowered_from, str):
        with suppress(ValueError):
            level = max(level, Classification(lowered_from))
    actor = None
    if found is not None and found.has_actor:
        actor = Actor(subject="cause", tenant=found.tenant)
    return Message(
        id=causation,
        type=message.type,
        sender=message.sender,
        classification=level,
        actor=actor,
    )


def replay_policy(
    records: Iterable[AuditRecord],
    candidate: Policy,
    cards: Mapping[str, AgentCard],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    kinds: Mapping[str, KindReplay] = KIND_REPLAY,
) -> ReplayReport:
    """Re-evaluate recorded decisions under ``candidate`` and compare, check by check.

    Each ``decision`` record in the window is rebuilt into its message (:func:`record_message`)
    and evaluated for the same recipient (its card from ``cards``; a name not there is a client
    address) at the record's time, with the sender's card and, for an agent's output, a
    stand-in for its cause (see the module docs). Other records are read only to find causes.

    Args:
        records: audit records, in each node's order (``iter_records_url`` gives them so).
        candidate: the policy to try.
        cards: agent cards by name (``app.registry``): recipient clearance, risk, region and
            tenant tags, and sender risk, matter to checks.
        since: only decisions at or after this time (aware datetime).
        until: only decisions before this time.
        limit: replay at most this many decisions (the first in the records' order).
        kinds: what each check kind reads (:data:`~govbus.policy.replayable.KIND_REPLAY`);
            pass an extended copy to replay custom kinds.

    Returns:
        A :class:`ReplayReport`; nothing in it holds payload text.
    """
    replayer = _Replayer(candidate, cards, kinds)
    deferred: list[AuditRecord] = []
    taken = 0
    truncated = False
    for record in records:
        if record.kind != "decision":
            continue
        if replayer.needs_cause:
            replayer.remember_cause(record)
        if (since is not None and record.ts < since) or (until is not None and record.ts >= until):
            continue
        if limit is not None and taken >= limit:
            truncated = True
            break
        taken += 1
        if replayer.cause_pending(record):
            deferred.append(record)  # its cause may be on a node read later
        else:
            replayer.replay(record)
    for record in deferred:
        replayer.replay(record)
    return replayer.report(since, until, truncated)


# -- shadow reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowCheck:
    """One check id across a candidate's shadow records.

    Attributes:
        id: the check id.
        changed: shadow records listing this check as changed.
        transitions: enforced outcome -> candidate outcome, with the candidate's reason codes.
        allow_to_deny: of those, decisions the candidate would have denied (enforced allowed)
            where this check's candidate outcome is a deny.
        deny_to_allow: decisions the candidate would have allowed (enforced denied) where this
            check's enforced outcome was a deny.
    """

    id: str
    changed: int
    transitions: tuple[Transition, ...]
    allow_to_deny: int
    deny_to_allow: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "id": self.id,
            "changed": self.changed,
            "transitions": [t.as_dict() for t in self.transitions],
            "allow_to_deny": self.allow_to_deny,
            "deny_to_allow": self.deny_to_allow,
        }


@dataclass(frozen=True)
class ShadowCandidate:
    """What one shadowed candidate would have changed on live traffic.

    Attributes:
        policy: the candidate.
        compared: decisions made while it shadowed (decision records a node wrote after an
            ``admin start`` naming it as ``shadow_policy``, until that node's next start or
            stop), or None when no such start record was read.
        differing: shadow records (decisions whose outcome under the candidate differs).
        verdicts: ``allow->deny``, ``deny->allow`` and ``same`` (only check outcomes differ).
        changes: the verdict flips with example message ids.
        checks: per check id, most often changed first.
        nodes: the nodes that shadowed it.
        first: time of the earliest shadow record.
        last: time of the latest shadow record.
    """

    policy: PolicyRef
    compared: int | None
    differing: int
    verdicts: Mapping[str, int]
    changes: tuple[Tally, ...]
    checks: tuple[ShadowCheck, ...]
    nodes: tuple[str, ...]
    first: datetime | None
    last: datetime | None

    def check(self, check_id: str) -> ShadowCheck:
        """The entry for ``check_id``; KeyError if no shadow record listed it."""
        for entry in self.checks:
            if entry.id == check_id:
                return entry
        raise KeyError(check_id)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "policy": self.policy.as_dict(),
            "compared": self.compared,
            "differing": self.differing,
            "verdicts": dict(self.verdicts),
            "changes": [c.as_dict() for c in self.changes],
            "checks": [c.as_dict() for c in self.checks],
            "nodes": list(self.nodes),
            "first": _iso(self.first),
            "last": _iso(self.last),
        }


@dataclass(frozen=True)
class ShadowReport:
    """Shadow records summarised per candidate (:func:`shadow_report`).

    Attributes:
        since: the window's start (inclusive), if given.
        until: the window's end (exclusive), if given.
        candidate: the sha256 the report was restricted to, if any.
        candidates: one entry per candidate policy (by sha256), most differing first.
    """

    since: datetime | None
    until: datetime | None
    candidate: str | None
    candidates: tuple[ShadowCandidate, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``--format json``)."""
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "candidate": self.candidate,
            "candidates": [c.as_dict() for c in self.candidates],
        }


@dataclass
class _ShadowAcc:
    policy: PolicyRef
    compared: int = 0
    started: bool = False
    differing: int = 0
    verdicts: dict[str, int] = field(
        default_factory=lambda: {"allow->deny": 0, "deny->allow": 0, "same": 0}
    )
    changes: _Tallies = field(default_factory=_Tallies)
    checks: dict[str, tuple[_Tallies, dict[Any, dict[str, int]], list[int]]] = field(
        default_factory=dict
    )
    nodes: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None


def _ref(value: Any) -> PolicyRef | None:
    if not isinstance(value, Mapping) or not isinstance(value.get("sha256"), str):
        return None
    return PolicyRef(str(value.get("name", "?")), str(value.get("version", "?")), value["sha256"])


def shadow_report(
    records: Iterable[AuditRecord],
    *,
    candidate: Policy | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ShadowReport:
    """Summarise ``shadow`` records: per candidate and check, how many live decisions the
    candidate would have changed, in which direction, over how many compared decisions.

    The denominator counts the ``decision`` records each node wrote while the candidate
    shadowed it: after an ``admin``/``start`` record whose ``shadow_policy`` names the
    candidate, until the node's next ``start`` or ``stop``.

    Args:
        records: audit records, in each node's order (``iter_records_url`` gives them so).
        candidate: only this candidate (a loaded policy, or its sha256).
        since: only records at or after this time.
        until: only records before this time.
    """
    wanted = candidate.sha256 if isinstance(candidate, Policy) else candidate
    accs: dict[str, _ShadowAcc] = {}
    shadowing: dict[str, str | None] = {}  # node -> sha256 of the candidate it shadows
    for record in records:
        kind = record.kind
        if kind == "admin":
            if record.outcome == "start":
                ref = _ref(record.data.get("shadow_policy"))
                shadowing[record.node] = ref.sha256 if ref is not None else None
                if ref is not None and (wanted is None or ref.sha256 == wanted):
                    acc = accs.setdefault(ref.sha256, _ShadowAcc(ref))
                    acc.started = True
            elif record.outcome == "stop":
                shadowing[record.node] = None
            continue
        if (since is not None and record.ts < since) or (until is not None and record.ts >= until):
            continue
        if kind == "decision":
            sha = shadowing.get(record.node)
            if sha is not None and sha in accs:
                accs[sha].compared += 1
                accs[sha].nodes.add(record.node)
        elif kind == "shadow":
            _add_shadow(accs, record, wanted)
    candidates = tuple(
        _shadow_candidate(acc)
        for acc in sorted(accs.values(), key=lambda a: (-a.differing, a.policy.sha256))
    )
    return ShadowReport(since, until, wanted, candidates)


def _add_shadow(accs: dict[str, _ShadowAcc], record: AuditRecord, wanted: str | None) -> None:
    data = record.data
    sha = data.get("policy_sha256")
    if not isinstance(sha, str) or (wanted is not None and sha != wanted):
        return
    acc = accs.get(sha)
    if acc is None:
        ref = PolicyRef(str(data.get("policy", "?")), str(data.get("policy_version", "?")), sha)
        acc = accs[sha] = _ShadowAcc(ref)
    message_id = record.message_id or f"{record.node}#{record.seq}"
    acc.differing += 1
    acc.nodes.add(record.node)
    acc.first = record.ts if acc.first is None or record.ts < acc.first else acc.first
    acc.last = record.ts if acc.last is None or record.ts > acc.last else acc.last
    enforced, shadow = data.get("enforced"), data.get("shadow")
    flip = f"{enforced}->{shadow}" if enforced != shadow else "same"
    if flip in acc.verdicts:
        acc.verdicts[flip] += 1
        if flip != "same":
            acc.changes.add(flip, message_id)
    for entry in data.get("changed") or ():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            continue
        tallies, codes, flips = acc.checks.setdefault(entry["id"], (_Tallies(), {}, [0, 0]))
        key = (entry.get("enforced"), entry.get("shadow"))
        tallies.add(key, message_id)
        code = entry.get("code")
        if isinstance(code, str):
            by_code = codes.setdefault(key, {})
            by_code[code] = by_code.get(code, 0) + 1
        if flip == "allow->deny" and entry.get("shadow") == "deny":
            flips[0] += 1
        elif flip == "deny->allow" and entry.get("enforced") == "deny":
            flips[1] += 1


def _shadow_candidate(acc: _ShadowAcc) -> ShadowCandidate:
    checks = []
    for check_id, (tallies, codes, flips) in acc.checks.items():
        transitions = tuple(
            Transition(was, now, n, ex, dict(codes.get((was, now), {})))
            for (was, now), n, ex in tallies.ranked()
        )
        changed = sum(t.count for t in transitions)
        checks.append(ShadowCheck(check_id, changed, transitions, flips[0], flips[1]))
    checks.sort(key=lambda c: (-c.changed, c.id))
    return ShadowCandidate(
        policy=acc.policy,
        compared=acc.compared if acc.started else None,
        differing=acc.differing,
        verdicts=dict(acc.verdicts),
        changes=acc.changes.tallies(),
        checks=tuple(checks),
        nodes=tuple(sorted(acc.nodes)),
        first=acc.first,
        last=acc.last,
    )
