"""The compiled policy and its composite evaluator.

:meth:`Policy.evaluate` sits on every hop, so everything that can be decided at load time is:
patterns are compiled, modes resolved, and each check is flattened into a plain tuple the loop
unpacks. The loop itself is deliberately boring (SPEC section 4):

- checks run in file order, and **all** of them run, so the audit holds complete evidence;
- a check whose ``when`` does not apply is recorded as ``skipped``;
- a check that raises (or returns something that is not a decision) is a ``check_error`` deny:
  fail closed;
- a deny from an enforcing check blocks; from a monitor-mode check it is a ``would_deny``;
- redactions and escalations from enforcing checks are obligations, applied in order to the
  dispatched copy when the message is allowed; in monitor mode they are only recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias

from pydantic import BaseModel

from govbus.envelope import Classification, Message, TypePattern
from govbus.policy.obligations import apply_obligations, redaction_problem
from govbus.policy.types import (
    Allow,
    CheckFn,
    CheckInput,
    CheckOutcome,
    CheckResult,
    Decision,
    Deny,
    Escalate,
    Evaluation,
    Redact,
    Redaction,
)

__all__ = ["CompiledCheck", "Mode", "NameGlobs", "Policy", "When"]

Mode: TypeAlias = Literal["enforce", "monitor"]

_NO_EVIDENCE: Final[Mapping[str, Any]] = MappingProxyType({})
_new_tuple = tuple.__new__


class NameGlobs:
    """Globs over names (senders, agents), with the semantics of :func:`govbus.glob_match`:
    ``*`` matches any run of characters, ``?`` one character, anything else itself.

    Compiled once into an exact-name set and one alternation, so matching is a set lookup and at
    most one regex call however many globs there are.

    >>> NameGlobs(["web", "advisor-*"]).matches("advisor-eu")
    True
    """

    __slots__ = ("_exact", "_regex", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        if not self.patterns or not all(isinstance(p, str) and p for p in self.patterns):
            raise ValueError("name globs must be a non-empty list of non-empty strings")
        self._exact = frozenset(p for p in self.patterns if "*" not in p and "?" not in p)
        wild = [p for p in self.patterns if p not in self._exact]
        self._regex = (
            re.compile("|".join(f"(?:{_glob_regex(p)})" for p in wild) + r"\Z", re.DOTALL)
            if wild
            else None
        )

    def matches(self, name: str) -> bool:
        if name in self._exact:
            return True
        return self._regex is not None and self._regex.match(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NameGlobs) and self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)

    def __repr__(self) -> str:
        return f"NameGlobs({list(self.patterns)!r})"


def _glob_regex(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


@dataclass(frozen=True, slots=True)
class When:
    """When a check applies. Every clause given must hold; no clause means always.

    Attributes:
        types: globs over ``message.type``.
        senders: globs over ``message.sender``.
        recipients: globs over the recipient agent's name; a message without a recipient card
            (addressed to a client) does not match a ``recipients`` clause.
        classification_at_least: the message's classification must be at least this.

    Example:
        >>> When.from_spec({"types": ["portfolio.*"], "classification_at_least": "pii"})
        When(types=['portfolio.*'], classification_at_least='pii')
    """

    types: TypePattern | None = None
    senders: NameGlobs | None = None
    recipients: NameGlobs | None = None
    classification_at_least: Classification | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> When:
        """Build from a policy file's ``when`` mapping (already schema-valid)."""
        if not spec:
            return ALWAYS
        types = spec.get("types")
        senders = spec.get("senders")
        recipients = spec.get("recipients")
        level = spec.get("classification_at_least")
        return cls(
            types=TypePattern(types) if types is not None else None,
            senders=NameGlobs(senders) if senders is not None else None,
            recipients=NameGlobs(recipients) if recipients is not None else None,
            classification_at_least=Classification(level) if level is not None else None,
        )

    @property
    def always(self) -> bool:
        """True when there is no clause, so the check applies to every message."""
        return (
            self.types is None
            and self.senders is None
            and self.recipients is None
            and self.classification_at_least is None
        )

    def applies(self, inp: CheckInput) -> bool:
        """True when every clause holds for ``inp``."""
        message = inp.message
        if self.types is not None and not self.types.matches(message.type):
            return False
        if self.senders is not None and not self.senders.matches(message.sender):
            return False
        if self.recipients is not None:
            recipient = inp.recipient
            if recipient is None or not self.recipients.matches(recipient.name):
                return False
        level = self.classification_at_least
        return level is None or message.classification.rank >= level.rank

    def as_spec(self) -> dict[str, Any]:
        """The ``when`` mapping this was built from (for explain and diff)."""
        out: dict[str, Any] = {}
        if self.types is not None:
            out["types"] = list(self.types.patterns)
        if self.senders is not None:
            out["senders"] = list(self.senders.patterns)
        if self.recipients is not None:
            out["recipients"] = list(self.recipients.patterns)
        if self.classification_at_least is not None:
            out["classification_at_least"] = self.classification_at_least.value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_spec().items())
        return f"When({inner})"


ALWAYS: Final = When()


@dataclass(frozen=True, slots=True)
class CompiledCheck:
    """One check of a loaded policy, ready to run.

    Attributes:
        id: the check's unique id in the policy file.
        kind: the registry key it was built from (``use:``).
        mode: ``enforce`` or ``monitor``: the check's own ``mode``, else the policy's.
        when: when it applies.
        fn: the check callable built by the kind.
        params: the kind's validated parameter model.
        description: the optional ``description`` from the policy file.
    """

    id: str
    kind: str
    mode: Mode
    when: When
    fn: CheckFn
    params: BaseModel
    description: str = ""

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"


# One entry per check, unpacked by the hot loop: (id, kind, enforcing, when-or-None, fn, skipped)
_Step: TypeAlias = tuple[str, str, bool, When | None, CheckFn, CheckResult]


@dataclass(frozen=True, eq=False)
class Policy:
    """A loaded, validated policy. Build one with :func:`govbus.policy.load_policy`.

    Attributes:
        name: ``metadata.name``.
        version: ``metadata.version``.
        owner: ``metadata.owner``, if given.
        description: ``metadata.description``, if given.
        mode: the policy-wide mode (``spec.mode``); each check's effective mode is on the check.
        roles: the roles declared in ``spec.roles``.
        checks: the compiled checks, in file order.
        sha256: hex sha256 of the canonical JSON (sorted keys, compact) of the parsed document:
            comments and formatting do not change it, any semantic change does. When checks
            read files (schemas), their sha256 are hashed with it (see ``files``). Approvals are
            recorded against it.
        source: the file the policy was loaded from, or None.
        document: the parsed document (treat it as read-only).
        files: the files its checks read, by the name the policy gives them -> sha256.
    """

    name: str
    version: str
    owner: str | None
    description: str | None
    mode: Mode
    roles: frozenset[str]
    checks: tuple[CompiledCheck, ...]
    sha256: str
    source: Path | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    files: Mapping[str, str] = field(default_factory=dict, repr=False)
    _steps: tuple[_Step, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        steps = tuple(
            (
                c.id,
                c.kind,
                c.enforcing,
                None if c.when.always else c.when,
                c.fn,
                CheckResult(c.id, c.kind, "skipped"),
            )
            for c in self.checks
        )
        object.__setattr__(self, "_steps", steps)

    def check(self, check_id: str) -> CompiledCheck:
        """The check with id ``check_id``; KeyError if there is none."""
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def evaluate(self, inp: CheckInput) -> Evaluation:
        """Run every check against ``inp`` and combine the decisions (see the module docs).

        Never raises for a check's sake: a check that raises is a ``check_error`` deny.
        """
        results: list[CheckResult] = []
        append = results.append
        deciding: CheckResult | None = None
        obligations: list[tuple[str, Redact | Escalate]] | None = None
        clock = perf_counter_ns
        for check_id, kind, enforcing, when, fn, skipped in self._steps:
            if when is not None and not when.applies(inp):
                append(skipped)
                continue
            start = clock()
            try:
                decision = fn(inp)
            except Exception as exc:  # fail closed: a broken check denies, it does not crash
                decision = Deny("check_error", f"{type(exc).__name__}: {exc}")
            elapsed = clock() - start
            if type(decision) is Allow:
                # tuple.__new__ skips the NamedTuple's generated __new__ (one per check per hop).
                append(
                    _new_tuple(
                        CheckResult, (check_id, kind, "allow", None, None, _NO_EVIDENCE, elapsed)
                    )
                )
                continue
            # Rare path: anything but a plain allow.
            result, obligation = _record(check_id, kind, enforcing, decision, inp, elapsed)
            append(result)
            if result.outcome == "deny" and deciding is None:
                deciding = result
            if obligation is not None:
                if obligations is None:
                    obligations = []
                obligations.append((check_id, obligation))
        if deciding is not None:
            return Evaluation(False, inp.message, tuple(results), deciding)
        if obligations is None:
            return _new_tuple(Evaluation, (True, inp.message, tuple(results), None, ()))
        return Evaluation(
            True,
            _apply(inp, obligations),
            tuple(results),
            None,
            tuple(
                f"redact:{cid}" if isinstance(o, Redact) else f"escalate:{o.to.value}"
                for cid, o in obligations
            ),
        )


def _record(
    check_id: str,
    kind: str,
    enforcing: bool,
    decision: Decision,
    inp: CheckInput,
    elapsed: int,
) -> tuple[CheckResult, Redact | Escalate | None]:
    """The result of a non-allow decision, and the obligation it imposes (enforcing only)."""
    if isinstance(decision, Redact):
        problem = _redactions_problem(inp, decision.redactions)
        if problem is not None:
            decision = Deny("check_error", f"InvalidRedaction: {problem}")
    elif isinstance(decision, Allow):
        return CheckResult(check_id, kind, "allow", None, None, _NO_EVIDENCE, elapsed), None
    elif isinstance(decision, Escalate):
        if not isinstance(decision.to, Classification):
            try:  # a plain "pii" is fine; anything that is no classification fails closed
                decision = Escalate(
                    Classification(decision.to), decision.code, decision.reason, decision.evidence
                )
            except ValueError:
                decision = Deny("check_error", f"InvalidEscalation: {decision.to!r}")
    elif not isinstance(decision, Deny):
        decision = Deny(
            "check_error",
            f"TypeError: check returned {type(decision).__name__}, expected a Decision",
        )
    outcome: CheckOutcome
    if isinstance(decision, Deny):
        outcome = "deny" if enforcing else "would_deny"
    elif isinstance(decision, Redact):
        outcome = "redact" if enforcing else "would_redact"
    else:
        outcome = "escalate" if enforcing else "would_escalate"
    result = CheckResult(
        check_id, kind, outcome, decision.code, decision.reason, decision.evidence, elapsed
    )
    if enforcing and not isinstance(decision, Deny):
        return result, decision
    return result, None


def _redactions_problem(inp: CheckInput, redactions: tuple[Redaction, ...]) -> str | None:
    if not isinstance(redactions, tuple) or not redactions:
        return "a redact decision must carry at least one Redaction"
    for r in redactions:
        if not isinstance(r, Redaction):
            return f"expected Redaction, got {type(r).__name__}"
        problem = redaction_problem(inp.message, r)
        if problem is not None:
            return problem
    return None


def _apply(inp: CheckInput, obligations: list[tuple[str, Redact | Escalate]]) -> Message:
    redactions: list[Redaction] = []
    level: Classification | None = None
    for _, o in obligations:
        if isinstance(o, Redact):
            redactions.extend(o.redactions)
        elif level is None or o.to > level:
            level = o.to
    return apply_obligations(inp.message, redactions, level)
