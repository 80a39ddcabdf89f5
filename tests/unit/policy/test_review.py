"""Policy review: lint findings with their positions, explain, and the semantic diff."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from govbus.policy import (
    CHECK_KINDS,
    PolicyNotFoundError,
    diff,
    explain,
    explain_html,
    lint,
    load_policy,
    parse_policy,
)
from govbus.policy.approvals import Approval
from govbus.policy.cases import Case, CaseError

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "policies" / "default.yaml"

BASE = """\
apiVersion: govbus/v1
kind: Policy
metadata:
  name: review
  version: "1"
  owner: Risk
spec:
  roles: [advisor, admin]
  checks:
    - id: size
      use: length
      max_bytes: 1000
    - id: roles
      use: rbac
      rules:
        - types: ["portfolio.*"]
          roles: [advisor, admin]
      default: allow
    - id: meta
      use: required_metadata
      keys: [traceparent, tenant]
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lint_clean_policy_has_no_findings(tmp_path: Path) -> None:
    assert lint([write(tmp_path, BASE)]) == []


def test_lint_reports_loader_issues_as_errors_at_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("use: length", "use: lenght"))
    [finding] = lint([path])
    assert (finding.severity, finding.code, finding.line, finding.column) == (
        "error",
        "unknown_kind",
        11,
        12,
    )
    assert "did you mean 'length'" in finding.message
    assert str(finding).startswith(f"{path}:11:12: error: unknown_kind: ")


def test_lint_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("keys: [traceparent, tenant]", "keys: [traceparent"))
    findings = lint([path])
    assert [f.code for f in findings] == ["yaml_syntax"]
    assert findings[0].line >= 19


def test_lint_missing_file_raises() -> None:
    with pytest.raises(PolicyNotFoundError):
        lint(["/nonexistent/policy.yaml"])


def test_lint_warns_about_monitor_mode_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("spec:\n", "spec:\n  mode: monitor\n"))
    [finding] = lint([path])
    assert (finding.severity, finding.code, finding.line, finding.column) == (
        "warning",
        "monitor_mode",
        8,
        9,
    )


def test_lint_warns_about_unused_roles_at_the_role(tmp_path: Path) -> None:
    path = write(
        tmp_path, BASE.replace("[advisor, admin]\n  checks", "[advisor, admin, ops]\n  checks")
    )
    [finding] = lint([path])
    assert (finding.code, finding.line, finding.column) == ("unused_role", 8, 27)
    assert "'ops'" in finding.message


def test_lint_warns_about_a_check_identical_to_an_earlier_one(tmp_path: Path) -> None:
    text = BASE + "    - id: size-again\n      use: length\n      max_bytes: 1000\n"
    [finding] = lint([write(tmp_path, text)])
    assert (finding.code, finding.line) == ("duplicate_check", 22)
    assert "'size'" in finding.message and "line 10" in finding.message


def test_lint_same_kind_with_other_params_is_not_a_duplicate(tmp_path: Path) -> None:
    text = BASE + "    - id: size-again\n      use: length\n      max_bytes: 2000\n"
    assert lint([write(tmp_path, text)]) == []


def test_lint_warns_about_when_types_no_message_can_have(tmp_path: Path) -> None:
    text = BASE + (
        "    - id: odd\n      use: length\n      max_bytes: 5\n"
        "      when: {types: [portfolio., advisory.*]}\n"
    )
    [finding] = lint([write(tmp_path, text)])
    assert (finding.code, finding.line, finding.column) == ("unmatchable_type", 25, 22)
    assert "'portfolio.'" in finding.message


def test_lint_default_policy_has_no_errors() -> None:
    assert all(f.severity == "warning" for f in lint([DEFAULT]))


def test_explain_mentions_every_check_kind_summary_and_hash() -> None:
    policy = load_policy(DEFAULT)
    text = explain(policy)
    assert policy.sha256 in text
    assert f"version {policy.version}" in text and "Chief Risk Officer" in text
    for check in policy.checks:
        assert check.id in text
        assert CHECK_KINDS[check.kind].summary in text
    assert "at most 65,536 bytes" in text
    assert "govbus.denied" in text
    assert f"NOT APPROVED: no approval record for sha256 {policy.sha256}" in text


def test_explain_describes_when_monitor_mode_and_approval(tmp_path: Path) -> None:
    text = BASE + (
        "    - id: watch\n      use: length\n      max_bytes: 5\n      mode: monitor\n"
        "      when: {types: [portfolio.*], recipients: [advisor*]}\n"
    )
    policy = load_policy(write(tmp_path, text))
    record = Approval(
        name="p", version="1", approver="CRO", date="2026-11-21", reference="R-1",
        sha256=policy.sha256,
    )  # fmt: skip
    out = explain(policy, record)
    assert "messages of types portfolio.* sent to agents matching advisor*" in out
    assert "would deny" in out
    assert "approved by CRO on 2026-11-21 (reference R-1)" in out
    wrong = explain(policy, record.model_copy(update={"sha256": "0" * 64}))
    assert "NOT APPROVED" in wrong


def test_explain_html_is_escaped() -> None:
    policy = parse_policy(BASE.replace("owner: Risk", "owner: <b>Risk & Co</b>"), source="p.yaml")
    out = explain_html(policy)
    assert out.startswith("<!DOCTYPE html>")
    assert "&lt;b&gt;Risk &amp; Co&lt;/b&gt;" in out and "<b>" not in out
    assert "<li>" in out and policy.sha256 in out


def test_diff_of_identical_policies_is_empty() -> None:
    assert diff(parse_policy(BASE), parse_policy(BASE)) == []


def test_diff_detects_metadata_mode_and_roles() -> None:
    new = (
        BASE.replace('version: "1"', 'version: "2"')
        .replace("spec:\n", "spec:\n  mode: monitor\n")
        .replace("[advisor, admin]\n  checks", "[advisor, admin, ops]\n  checks")
    )
    changes = diff(parse_policy(BASE), parse_policy(new))
    texts = {(c.kind, c.text) for c in changes}
    assert ("metadata", "version: 1 → 2") in texts
    assert ("mode", "policy mode: enforce → monitor") in texts
    assert ("role_added", "role added: ops") in texts
    # Every check inherits the policy mode, so each one's mode changes too.
    assert {c.check_id for c in changes if c.kind == "check_mode"} == {"size", "roles", "meta"}


def test_diff_detects_checks_added_removed_and_kind_changed() -> None:
    new = BASE.replace(
        "    - id: meta\n      use: required_metadata\n      keys: [traceparent, tenant]\n", ""
    )
    new += "    - id: extra\n      use: length\n      max_bytes: 5\n"
    new = new.replace(
        "- id: size\n      use: length\n      max_bytes: 1000",
        ("- id: size\n      use: required_metadata\n      keys: [x]"),
    )
    changes = diff(parse_policy(BASE), parse_policy(new))
    kinds = {(c.kind, c.check_id) for c in changes}
    assert ("check_removed", "meta") in kinds
    assert ("check_added", "extra") in kinds
    assert ("check_kind", "size") in kinds
    assert not any(c.kind == "param" and c.check_id == "size" for c in changes)


def test_diff_detects_params_when_mode_and_order() -> None:
    new = (
        BASE.replace("max_bytes: 1000", "max_bytes: 500\n      mode: monitor")
        .replace("keys: [traceparent, tenant]", "keys: [traceparent, region]")
        .replace(
            "      use: rbac\n",
            "      use: rbac\n      when: {classification_at_least: pii}\n",
        )
    )
    changes = diff(parse_policy(BASE), parse_policy(new))
    texts = [c.text for c in changes]
    assert "check size: max_bytes: 1000 → 500" in texts
    assert "check size: mode enforce → monitor" in texts
    assert "check meta: keys: added region" in texts
    assert "check meta: keys: removed tenant" in texts
    assert "check roles: applies to all messages → messages classified pii or above" in texts
    moved = (
        BASE.replace("    - id: size\n      use: length\n      max_bytes: 1000\n", "")
        + "    - id: size\n      use: length\n      max_bytes: 1000\n"
    )
    order = [c for c in diff(parse_policy(BASE), parse_policy(moved)) if c.kind == "order"]
    assert order and order[0].text.startswith("check ")
    assert {c.check_id for c in order} >= {"size"}


CASES = [
    Case(
        note="big",
        message={"type": "advisory.request", "from": "web", "payload": {"a": "b"}},
        fill={"text": 800},
        want="allow",
    ),
    Case(
        note="small",
        message={"type": "advisory.request", "from": "web", "payload": {"a": "b"}},
        want="allow",
    ),
]


def test_diff_reports_cases_that_change_outcome() -> None:
    old = parse_policy(
        BASE.replace("keys: [traceparent, tenant]", "keys: [x]\n      mode: monitor")
    )
    new = parse_policy(
        BASE.replace("max_bytes: 1000", "max_bytes: 500").replace(
            "keys: [traceparent, tenant]", "keys: [x]\n      mode: monitor"
        )
    )
    cases = [c for c in diff(old, new, cases=CASES) if c.kind == "case"]
    assert [c.text for c in cases] == ["case 'big': allow → deny by size"]
    assert cases[0].check_id == "size"


def test_diff_case_with_unknown_recipient_is_an_error() -> None:
    policy = parse_policy(BASE)
    ghost = dataclasses.replace(CASES[1], recipient="ghost")
    with pytest.raises(CaseError, match=r"<cases>:0: unknown recipient 'ghost'"):
        diff(policy, policy, cases=[ghost])


def test_explain_uses_each_kinds_own_description() -> None:
    """Kinds describe their parameters themselves (rbac, routes, rate_limit here); a custom kind
    with a ``describe`` hook is explained in its own words, one without it by name and value."""
    from govbus.policy import ALLOW, CHECK_KINDS, CheckParams

    class Quiet(CheckParams):
        hours: int = 22

    kinds = CHECK_KINDS.copy()

    @kinds.register(
        "quiet_hours",
        params=Quiet,
        summary="Refuse messages at night.",
        describe=lambda p: [f"Quiet from {p.hours}:00."],
    )
    def quiet(params: Quiet, ctx: object) -> object:
        return lambda inp: ALLOW

    @kinds.register("plain", params=Quiet, summary="No description hook.")
    def plain(params: Quiet, ctx: object) -> object:
        return lambda inp: ALLOW

    policy = parse_policy(
        """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: words, version: "1"}
spec:
  checks:
    - id: roles
      use: rbac
      rules: [{types: ["portfolio.*"], roles: [advisor, admin], senders: [web]}]
    - id: paths
      use: routes
      rules: [{from: [intake], to: [advisor], types: [advice.request, advice.followup]}]
      default: allow
    - id: pace
      use: rate_limit
      rate: 2.5
      burst: 10
    - id: night
      use: quiet_hours
    - id: other
      use: plain
""",
        kinds=kinds,
    )
    text = explain(policy, kinds=kinds)
    assert "Rule: messages of types portfolio.* from senders web need one of the roles " in text
    assert "roles advisor or admin." in text
    assert "Route: intake may send advice.request or advice.followup to advisor." in text
    assert "Messages no rule covers are denied." in text  # rbac default
    assert "Messages no rule covers are allowed." in text  # routes default: allow
    assert "Limit: 2.5 messages per second per actor, bursts of up to 10, for types *." in text
    assert "Quiet from 22:00." in text
    assert "- hours: 22" in text
