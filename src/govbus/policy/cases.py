"""Policy test cases (``policies/<name>.cases.yaml``) and their coverage.

A cases file lists messages and the verdict the policy must reach for each::

    cases:
      - note: a customer may not ask the advisor directly
        message: {type: portfolio.advise, from: mobile-app, actor: {subject: c, roles: [customer]}}
        recipient: portfolio_advisor     # optional: the agent whose card the checks see
        want: deny                       # allow | deny
        want_check: advisors-only        # optional: the check that must decide
        fill: {statement: 70000}         # optional: payload key -> filler string length
        cause: {type: ..., actor: ...}   # optional: the message this one answers (an agent's
                                         # output), for checks that compare the two
        repeat: 12                       # optional: send it this many times (fresh ids); the
                                         # last verdict counts (rate limits)

Coverage tells a reviewer which checks the cases have seen allowing and which acting (denying,
or for a check whose action is ``redact`` or ``escalate``, doing that): a check never seen to
act is a check nobody has shown to work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml

from govbus.envelope import Message, new_id
from govbus.errors import ConfigError, EnvelopeError
from govbus.policy.engine import Policy
from govbus.policy.errors import yaml_error
from govbus.policy.loader import node_positions
from govbus.policy.types import CheckInput, Evaluation, MessageScan
from govbus.registry.card import AgentCard

Verdict = Literal["allow", "deny"]


class CaseError(ConfigError):
    """A case cannot be run: its message is invalid or its recipient unknown."""

    code = "case_invalid"


@dataclass(frozen=True)
class Case:
    """One test case, as written in the cases file (``line`` is 1-based)."""

    note: str
    message: Mapping[str, Any]
    want: Verdict
    want_check: str | None = None
    recipient: str | None = None
    fill: Mapping[str, int] = field(default_factory=dict)
    cause: Mapping[str, Any] | None = None
    repeat: int = 1
    file: str = "<cases>"
    line: int = 0

    def build_message(self) -> Message:
        """The case's envelope, with ``fill`` strings put into the payload."""
        raw = dict(self.message)
        payload = dict(raw.get("payload") or {})
        for key, length in self.fill.items():
            payload[key] = "x" * int(length)
        raw["payload"] = payload
        return Message.from_dict(raw)


@dataclass(frozen=True)
class CaseResult:
    case: Case
    passed: bool
    verdict: Verdict | None
    deciding: str | None
    problem: str | None = None


@dataclass(frozen=True)
class CasesReport:
    """Per-case results and per-check coverage (outcomes seen: ``allow``, ``deny``).

    ``deny`` stands for the check acting: a deny, or its redaction or escalation (and the
    ``would_`` forms of all three in monitor mode).
    """

    results: tuple[CaseResult, ...]
    coverage: Mapping[str, frozenset[str]]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def coverage_percent(self) -> float:
        """Share of (check, allow|deny) pairs the cases have shown, in percent."""
        if not self.coverage:
            return 100.0
        seen = sum(len(outcomes & {"allow", "deny"}) for outcomes in self.coverage.values())
        return 100.0 * seen / (2 * len(self.coverage))

    def uncovered(self) -> dict[str, list[str]]:
        """Checks and the outcomes no case has shown them reaching."""
        return {
            check: sorted({"allow", "deny"} - outcomes)
            for check, outcomes in self.coverage.items()
            if {"allow", "deny"} - outcomes
        }


def load_cases(path: str | Path) -> list[Case]:
    """Read a cases file; raise :class:`ConfigError` naming the file and line of a bad case."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read cases file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise yaml_error(file, exc) from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ConfigError(f"{file}: a cases file is a mapping with a 'cases' list")
    positions = node_positions(text)
    cases = []
    allowed = {"note", "message", "want", "want_check", "recipient", "fill", "cause", "repeat"}
    for index, raw in enumerate(data["cases"]):
        line = positions.at(("cases", index))[0]
        where = f"{file}:{line}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: case {index} must be a mapping")
        unknown = set(raw) - allowed
        if unknown:
            raise ConfigError(
                f"{where}: unknown case keys {sorted(unknown)}; use {sorted(allowed)}"
            )
        if raw.get("want") not in ("allow", "deny"):
            raise ConfigError(f"{where}: 'want' must be allow or deny")
        if not isinstance(raw.get("message"), dict):
            raise ConfigError(f"{where}: 'message' must be an envelope mapping")
        if raw.get("cause") is not None and not isinstance(raw["cause"], dict):
            raise ConfigError(f"{where}: 'cause' must be an envelope mapping")
        repeat = raw.get("repeat", 1)
        if type(repeat) is not int or not 1 <= repeat <= 10_000:
            raise ConfigError(f"{where}: 'repeat' must be a whole number from 1 to 10000")
        cases.append(
            Case(
                note=str(raw.get("note", f"case {index}")),
                message=raw["message"],
                want=raw["want"],
                want_check=raw.get("want_check"),
                recipient=raw.get("recipient"),
                fill=raw.get("fill") or {},
                cause=raw.get("cause"),
                repeat=repeat,
                file=str(file),
                line=line,
            )
        )
    return cases


def evaluate_case(
    policy: Policy, case: Case, cards: Mapping[str, AgentCard], now: datetime | None = None
) -> Evaluation:
    """Evaluate one case's message for its recipient.

    Raises:
        CaseError: the case's message is invalid or names an unknown recipient (the message
            says which case, by file and line).
    """
    where = f"{case.file}:{case.line}"
    try:
        message = case.build_message()
        cause = Message.from_dict(dict(case.cause)) if case.cause is not None else None
    except EnvelopeError as exc:
        raise CaseError(f"{where}: invalid case message: {exc}") from None
    recipient = None
    if case.recipient:
        recipient = cards.get(case.recipient)
        if recipient is None:
            known = ", ".join(sorted(cards)) or "none"
            raise CaseError(f"{where}: unknown recipient {case.recipient!r} (known: {known})")
    now = now or datetime.now(UTC)
    for _ in range(case.repeat - 1):  # earlier sends: same content, each its own message id
        earlier = message.model_copy(update={"id": new_id()})
        policy.evaluate(check_input(earlier, recipient, cards, now, cause))
    return policy.evaluate(check_input(message, recipient, cards, now, cause))


def check_input(
    message: Message,
    recipient: AgentCard | None,
    cards: Mapping[str, AgentCard],
    now: datetime,
    cause: Message | None = None,
) -> CheckInput:
    """The input the orchestrator would give the checks for ``message`` reaching ``recipient``
    (the sender's card looked up in ``cards``; a fresh scan), for evaluating outside a run."""
    return CheckInput(
        message=message,
        recipient=recipient,
        sender=cards.get(message.sender),
        now=now,
        scan=MessageScan(message),
        cause=cause,
    )


# Outcomes that show a check acting count as its "deny" side of coverage.
_COVERAGE = {
    "would_deny": "deny",
    "redact": "deny",
    "would_redact": "deny",
    "escalate": "deny",
    "would_escalate": "deny",
}


def run_cases(
    policy: Policy, cases: Iterable[Case], cards: Mapping[str, AgentCard] | None = None
) -> CasesReport:
    """Run every case; record pass/fail and which outcomes each check was seen to reach."""
    cards = cards or {}
    seen: dict[str, set[str]] = {check.id: set() for check in policy.checks}
    results = []
    for case in cases:
        try:
            evaluation = evaluate_case(policy, case, cards)
        except CaseError as exc:
            results.append(CaseResult(case, False, None, None, str(exc)))
            continue
        for result in evaluation.results:
            seen[result.check_id].add(_COVERAGE.get(result.outcome, result.outcome))
        verdict: Verdict = "allow" if evaluation.allowed else "deny"
        deciding = evaluation.deciding.check_id if evaluation.deciding else None
        problem: str | None = None
        if verdict != case.want:
            problem = f"wanted {case.want}, got {verdict}" + (
                f" (decided by {deciding})" if deciding else ""
            )
        elif case.want_check is not None and deciding != case.want_check:
            problem = f"wanted check {case.want_check!r} to decide, got {deciding!r}"
        results.append(CaseResult(case, problem is None, verdict, deciding, problem))
    return CasesReport(tuple(results), {k: frozenset(v) for k, v in seen.items()})
