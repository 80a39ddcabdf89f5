"""Reviewing policy files: lint findings, a plain-language explanation, and a semantic diff.

These are the functions behind ``govbus policy lint``, ``explain`` and ``diff``; the command line
only parses arguments and prints what they return.

- :func:`lint` reports every problem the loader finds as an ``error`` and adds ``warning``
  findings the loader does not look for (duplicate checks, unused roles, monitor mode, ``when``
  types no message can have), each at the line and column of the node it is about.
- :func:`explain` / :func:`explain_html` write what a policy does for a reviewer who does not read
  YAML: each check, what it applies to, what it blocks or changes, what it records.
- :func:`diff` lists what changed between two versions of a policy in plain language and,
  given test cases, which cases change outcome.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from govbus.envelope import MESSAGE_TYPE_PATTERN
from govbus.policy.approvals import Approval
from govbus.policy.cases import Case, evaluate_case
from govbus.policy.engine import CompiledCheck, Policy, When
from govbus.policy.errors import PolicyError, PolicyNotFoundError
from govbus.policy.kinds import CHECK_KINDS, CheckKindRegistry, join_or
from govbus.policy.loader import NodePositions, load_policy, node_positions
from govbus.registry.card import AgentCard

__all__ = [
    "Change",
    "Finding",
    "Severity",
    "diff",
    "explain",
    "explain_html",
    "lint",
]

Severity = Literal["error", "warning"]

# A `when.types` entry without wildcards that breaks the envelope's rule for message types can
# never equal a message's type.
_MESSAGE_TYPE: Final = re.compile(MESSAGE_TYPE_PATTERN)

# Parameter names whose values are role names, in the built-in kinds (rbac, declassify,
# risk_ceiling); custom kinds that follow the naming count too.
_ROLE_PARAMS: Final = frozenset({"roles", "require_roles"})


# -- lint ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint finding.

    Attributes:
        file: the policy file as given.
        line: 1-based line of the offending node.
        column: 1-based column of the offending node.
        severity: ``error`` (the policy does not load) or ``warning`` (it loads, but is suspect).
        code: stable snake_case identifier (``unknown_key``, ``unused_role``, ...).
        message: what is wrong, in plain language.
    """

    file: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.code}: {self.message}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The finding as JSON-ready data."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
        }


def lint(paths: Iterable[str | Path], *, kinds: CheckKindRegistry = CHECK_KINDS) -> list[Finding]:
    """Lint policy files: every loader problem as an error, plus semantic warnings.

    Warnings (only for files that load): ``monitor_mode`` (the whole policy enforces nothing),
    ``unused_role`` (declared in ``spec.roles``, used by no check), ``duplicate_check`` (same
    kind, parameters and ``when`` as an earlier check) and ``unmatchable_type`` (a ``when.types``
    entry without wildcards that no message type can equal).

    Args:
        paths: policy files.
        kinds: the check-kind registry to resolve ``use:`` against.

    Returns:
        The findings, file by file, in file order.

    Raises:
        PolicyNotFoundError: a file does not exist (an input error, not a finding).
    """
    findings: list[Finding] = []
    for path in paths:
        label = str(path)
        try:
            policy = load_policy(path, kinds=kinds)
        except PolicyNotFoundError:
            raise
        except PolicyError as exc:
            findings.extend(
                Finding(i.file, i.line, i.column, "error", i.code, i.message) for i in exc.issues
            )
            continue
        positions = node_positions(Path(path).read_text(encoding="utf-8"))
        warnings = _warnings(policy, positions, label)
        warnings.sort(key=lambda f: (f.line, f.column))
        findings.extend(warnings)
    return findings


def _warnings(policy: Policy, pos: NodePositions, file: str) -> list[Finding]:
    out: list[Finding] = []

    def warn(at: tuple[int, int], code: str, message: str) -> None:
        out.append(Finding(file, at[0], at[1], "warning", code, message))

    if policy.mode == "monitor":
        warn(
            pos.at(("spec", "mode")),
            "monitor_mode",
            "the whole policy is in monitor mode: nothing is enforced, denials are only "
            "recorded as would_deny",
        )
    used: set[str] = set()
    for check in policy.checks:
        used.update(_role_names(check.params.model_dump(mode="json", by_alias=True)))
    raw_roles = policy.document.get("spec", {}).get("roles", [])
    for index, role in enumerate(raw_roles):
        if role not in used:
            warn(
                pos.at(("spec", "roles", index)),
                "unused_role",
                f"role {role!r} is declared in spec.roles but no check uses it",
            )
    # The policy loaded, so every entry of spec.checks compiled: check i is entry i.
    first: dict[str, tuple[str, int]] = {}
    for index, check in enumerate(policy.checks):
        base = ("spec", "checks", index)
        key = _identity(check)
        if key in first:
            earlier, line = first[key]
            warn(
                pos.at(base),
                "duplicate_check",
                f"check {check.id!r} repeats check {earlier!r} (line {line}): same kind, "
                "parameters and when, so it can never change the outcome",
            )
        else:
            first[key] = (check.id, pos.at(base)[0])
        for t_index, pattern in enumerate(check.when.as_spec().get("types", [])):
            if "*" not in pattern and "?" not in pattern and not _MESSAGE_TYPE.fullmatch(pattern):
                warn(
                    pos.at((*base, "when", "types", t_index)),
                    "unmatchable_type",
                    f"check {check.id!r}: when.types entry {pattern!r} is not a valid message "
                    "type, so it never matches",
                )
    return out


def _role_names(data: Any) -> set[str]:
    """Role names in a kind's dumped parameters (values of ``roles``/``require_roles``)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in _ROLE_PARAMS:
                values = value.values() if isinstance(value, dict) else [value]
                for item in values:
                    if isinstance(item, list):
                        found.update(r for r in item if isinstance(r, str))
            else:
                found |= _role_names(value)
    elif isinstance(data, list):
        for item in data:
            found |= _role_names(item)
    return found


def _identity(check: CompiledCheck) -> str:
    return json.dumps(
        [check.kind, check.params.model_dump(mode="json", by_alias=True), check.when.as_spec()],
        sort_keys=True,
    )


# -- explain -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Section:
    title: str
    lines: tuple[str, ...]  # "- " starts a bullet; anything else is a paragraph


def explain(
    policy: Policy,
    approval: Approval | None = None,
    *,
    kinds: CheckKindRegistry = CHECK_KINDS,
) -> str:
    """A plain-language Markdown account of ``policy`` for a reviewer.

    Args:
        policy: the loaded policy.
        approval: the approval record for this policy (``approver``, ``date``, ``reference``,
            ``sha256``), e.g. from :func:`find_approval`; None when there is none.
        kinds: the registry the policy was loaded with (for each kind's summary).

    Example:
        >>> from govbus.policy import parse_policy
        >>> p = parse_policy('''
        ... apiVersion: govbus/v1
        ... kind: Policy
        ... metadata: {name: tiny, version: "1"}
        ... spec:
        ...   checks:
        ...     - {id: size, use: length, max_bytes: 1024}
        ... ''')
        >>> "at most 1,024 bytes" in explain(p)
        True
    """
    title, sections = _explain(policy, approval, kinds)
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        previous_bullet = False
        for line in section.lines:
            bullet = line.startswith("- ")
            if previous_bullet and not bullet:
                out.append("")
            out.append(line)
            if not bullet:
                out.append("")
            previous_bullet = bullet
        if previous_bullet:
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def explain_html(
    policy: Policy,
    approval: Approval | None = None,
    *,
    kinds: CheckKindRegistry = CHECK_KINDS,
) -> str:
    """The same account as :func:`explain`, as a small standalone HTML page (all text escaped)."""
    title, sections = _explain(policy, approval, kinds)
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{esc(title)}</title></head>',
        "<body>",
        f"<h1>{esc(title)}</h1>",
    ]
    for section in sections:
        out.append(f"<h2>{esc(section.title)}</h2>")
        in_list = False
        for line in section.lines:
            if line.startswith("- "):
                if not in_list:
                    out.append("<ul>")
                    in_list = True
                out.append(f"<li>{esc(line[2:])}</li>")
                continue
            if in_list:
                out.append("</ul>")
                in_list = False
            out.append(f"<p>{esc(line)}</p>")
        if in_list:
            out.append("</ul>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _approval_line(policy: Policy, approval: Approval | None) -> str:
    if approval is None:
        return f"NOT APPROVED: no approval record for sha256 {policy.sha256}"
    if approval.sha256 != policy.sha256:
        return (
            f"NOT APPROVED: the approval record is for sha256 {approval.sha256}, "
            f"not for this policy's {policy.sha256}"
        )
    return (
        f"approved by {approval.approver} on {approval.date.isoformat()} "
        f"(reference {approval.reference})"
    )


def _explain(
    policy: Policy, approval: Approval | None, kinds: CheckKindRegistry
) -> tuple[str, list[_Section]]:
    title = f"Policy {policy.name} version {policy.version}"
    overview = []
    if policy.description:
        overview.append(policy.description)
    overview += [
        f"- Owner: {policy.owner or 'not stated'}",
        f"- sha256: {policy.sha256}",
        *(
            f"- The hash covers the file {name} (sha256 {digest[:12]}...)"
            for name, digest in sorted(policy.files.items())
        ),
        f"- Approval: {_approval_line(policy, approval)}",
        "- Mode: "
        + (
            "enforce (checks in enforce mode block or change messages)"
            if policy.mode == "enforce"
            else "monitor (nothing is enforced: every finding is only recorded)"
        ),
        "- Declared roles: "
        + (", ".join(sorted(policy.roles)) if policy.roles else "none (any role name is accepted)"),
    ]
    sections = [_Section("Overview", tuple(overview))]
    sections.append(
        _Section(
            "How the checks run",
            (
                f"The {len(policy.checks)} checks below run in this order on every message, "
                "and all of them run, so the audit log holds complete evidence. The first "
                "enforcing check that denies decides: the message is not delivered and the "
                "sender is answered with a govbus.denied message naming that check.",
            ),
        )
    )
    for number, check in enumerate(policy.checks, 1):
        kind = kinds.get(check.kind)
        lines = [
            kind.summary if kind is not None else f"A check of kind {check.kind}.",
        ]
        if check.description:
            lines.append(f"Why: {check.description}")
        lines += [
            f"- Applies to: {_when_words(check.when)}.",
            f"- Effect: {_effect(check)}",
            *(f"- {p}" for p in _param_words(check, kinds)),
            f"- Records: the audit log records this check's outcome for every message "
            f"(allow, {_outcomes(check)}, or skipped when it does not apply), with its evidence.",
        ]
        sections.append(_Section(f"{number}. {check.id} ({check.kind})", tuple(lines)))
    return title, sections


def _when_words(when: When) -> str:
    spec = when.as_spec()
    if not spec:
        return "all messages"
    parts = ["messages"]
    if "types" in spec:
        parts.append(f"of types {join_or(spec['types'])}")
    if "senders" in spec:
        parts.append(f"sent by senders matching {join_or(spec['senders'])}")
    if "recipients" in spec:
        parts.append(f"sent to agents matching {join_or(spec['recipients'])}")
    if "classification_at_least" in spec:
        parts.append(f"classified {spec['classification_at_least']} or above")
    return " ".join(parts)


def _action(check: CompiledCheck) -> str:
    """What the check does when it fires: deny, redact or escalate."""
    action = getattr(check.params, "action", "deny")
    return action if action in ("redact", "escalate") else "deny"


def _outcomes(check: CompiledCheck) -> str:
    action = _action(check)
    return action if check.enforcing else f"would_{action}"


def _effect(check: CompiledCheck) -> str:
    action = _action(check)
    if not check.enforcing:
        return (
            f"monitor mode: would {action}, but the message goes on unchanged; the "
            f"would_{action} outcome is only recorded."
        )
    if action == "redact":
        return "redacts what it finds in the delivered copy; the message is still delivered."
    if action == "escalate":
        return "raises the delivered copy's classification; the message is still delivered."
    return (
        "denies: the message is not delivered and the sender gets govbus.denied naming "
        f"check {check.id}."
    )


def _param_words(check: CompiledCheck, kinds: CheckKindRegistry) -> list[str]:
    """The kind's own plain-language description of its parameters, else names and values."""
    kind = kinds.get(check.kind)
    if kind is not None and kind.describe is not None:
        return kind.describe(check.params)
    dumped = check.params.model_dump(mode="json", by_alias=True)
    return [f"{name}: {json.dumps(value, sort_keys=True)}" for name, value in dumped.items()]


# -- diff --------------------------------------------------------------------------------------


ChangeKind = Literal[
    "metadata",
    "mode",
    "role_added",
    "role_removed",
    "check_added",
    "check_removed",
    "check_kind",
    "check_mode",
    "check_when",
    "param",
    "order",
    "file",
    "case",
]


@dataclass(frozen=True, slots=True)
class Change:
    """One semantic difference between two policies.

    Attributes:
        kind: what sort of change (``param``, ``check_added``, ``case``, ...).
        check_id: the check it is about, or None for policy-wide changes.
        text: the change in plain language.
    """

    kind: ChangeKind
    check_id: str | None
    text: str

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, Any]:
        """The change as JSON-ready data."""
        return {"kind": self.kind, "check_id": self.check_id, "text": self.text}


def diff(
    old: Policy,
    new: Policy,
    *,
    cases: Sequence[Case] | None = None,
    cards: Mapping[str, AgentCard] | None = None,
) -> list[Change]:
    """What changed from ``old`` to ``new``, in plain language.

    Args:
        old: the policy before.
        new: the policy after.
        cases: test cases (the ``*.cases.yaml`` format); those whose outcome (allowed or denied,
            and by which check) differs between the two policies are reported as ``case``.
        cards: the agent cards that a case's ``recipient`` names.

    Raises:
        CaseError: a case's message is invalid or names an unknown recipient.
    """
    changes: list[Change] = []
    for label, a, b in (
        ("name", old.name, new.name),
        ("version", old.version, new.version),
        ("owner", old.owner, new.owner),
        ("description", old.description, new.description),
    ):
        if a != b:
            changes.append(Change("metadata", None, f"{label}: {a} → {b}"))
    if old.mode != new.mode:
        changes.append(Change("mode", None, f"policy mode: {old.mode} → {new.mode}"))
    for role in sorted(new.roles - old.roles):
        changes.append(Change("role_added", None, f"role added: {role}"))
    for role in sorted(old.roles - new.roles):
        changes.append(Change("role_removed", None, f"role removed: {role}"))
    old_checks = {c.id: c for c in old.checks}
    new_checks = {c.id: c for c in new.checks}
    for check in old.checks:
        if check.id not in new_checks:
            changes.append(
                Change("check_removed", check.id, f"check removed: {check.id} ({check.kind})")
            )
    for check in new.checks:
        if check.id not in old_checks:
            changes.append(
                Change("check_added", check.id, f"check added: {check.id} ({check.kind})")
            )
    for check in new.checks:
        before = old_checks.get(check.id)
        if before is not None:
            changes.extend(_check_changes(before, check))
    changes.extend(_order_changes(old, new))
    for name in sorted(old.files.keys() & new.files.keys()):
        if old.files[name] != new.files[name]:
            changes.append(Change("file", None, f"file changed: {name} (content differs)"))
    if cases:
        changes.extend(_case_changes(old, new, cases, cards or {}))
    return changes


def _check_changes(old: CompiledCheck, new: CompiledCheck) -> list[Change]:
    cid = new.id
    if old.kind != new.kind:
        return [Change("check_kind", cid, f"check {cid}: kind {old.kind} → {new.kind}")]
    out: list[Change] = []
    if old.mode != new.mode:
        out.append(Change("check_mode", cid, f"check {cid}: mode {old.mode} → {new.mode}"))
    if old.when.as_spec() != new.when.as_spec():
        out.append(
            Change(
                "check_when",
                cid,
                f"check {cid}: applies to {_when_words(old.when)} → {_when_words(new.when)}",
            )
        )
    a = old.params.model_dump(mode="json", by_alias=True)
    b = new.params.model_dump(mode="json", by_alias=True)
    out.extend(Change("param", cid, f"check {cid}: {t}") for t in _value_changes("", a, b))
    return out


def _value_changes(name: str, a: Any, b: Any) -> list[str]:
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in [*a, *(k for k in b if k not in a)]:
            sub = f"{name}.{key}" if name else str(key)
            if key not in a:
                out.append(f"{sub} added: {_show(b[key])}")
            elif key not in b:
                out.append(f"{sub} removed (was {_show(a[key])})")
            else:
                out.extend(_value_changes(sub, a[key], b[key]))
        return out
    if isinstance(a, list) and isinstance(b, list):
        old_items = [_show(x) for x in a]
        new_items = [_show(x) for x in b]
        added = [x for x in new_items if x not in old_items]
        removed = [x for x in old_items if x not in new_items]
        out = [f"{name}: added {x}" for x in added] + [f"{name}: removed {x}" for x in removed]
        return out or [f"{name}: order {', '.join(old_items)} → {', '.join(new_items)}"]
    return [f"{name}: {_show(a)} → {_show(b)}"]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _order_changes(old: Policy, new: Policy) -> list[Change]:
    kept_old = [c.id for c in old.checks if any(n.id == c.id for n in new.checks)]
    kept_new = [c.id for c in new.checks if c.id in kept_old]
    if kept_old == kept_new:
        return []
    old_pos = {c.id: i for i, c in enumerate(old.checks, 1)}
    new_pos = {c.id: i for i, c in enumerate(new.checks, 1)}
    return [
        Change(
            "order",
            cid,
            f"check {cid} moved: position {old_pos[cid]} → {new_pos[cid]} "
            f"(now after {kept_new[i - 1] if i else 'nothing: it runs first'})",
        )
        for i, cid in enumerate(kept_new)
        if kept_old[i] != cid
    ]


def _case_changes(
    old: Policy,
    new: Policy,
    cases: Sequence[Case],
    cards: Mapping[str, AgentCard],
) -> list[Change]:
    now = datetime.now(UTC)
    out: list[Change] = []
    for case in cases:
        before = _verdict(old, case, cards, now)
        after = _verdict(new, case, cards, now)
        if before != after:
            out.append(
                Change(
                    "case",
                    after[1] or before[1],
                    f"case {case.note!r}: {_verdict_words(before)} → {_verdict_words(after)}",
                )
            )
    return out


def _verdict(
    policy: Policy, case: Case, cards: Mapping[str, AgentCard], now: datetime
) -> tuple[bool, str | None]:
    evaluation = evaluate_case(policy, case, cards, now)
    deciding = evaluation.deciding
    return evaluation.allowed, deciding.check_id if deciding is not None else None


def _verdict_words(verdict: tuple[bool, str | None]) -> str:
    allowed, check_id = verdict
    return "allow" if allowed else f"deny by {check_id}"
