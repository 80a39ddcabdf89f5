"""Policy test cases: loading (with line numbers), running, and coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.errors import ConfigError
from govbus.policy import parse_policy
from govbus.policy.cases import load_cases, run_cases

POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: t, version: "1"}
spec:
  checks:
    - {id: trace, use: required_metadata, keys: [traceparent]}
    - {id: size, use: length, max_bytes: 100}
"""

CASES = """\
cases:
  - note: traced and small
    message: {type: a.b, from: x, metadata: {traceparent: t}}
    want: allow
  - note: untraced
    message: {type: a.b, from: x}
    want: deny
    want_check: trace
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.cases.yaml"
    path.write_text(text)
    return path


def test_cases_run_and_report_coverage(tmp_path: Path) -> None:
    cases = load_cases(write(tmp_path, CASES))
    assert [c.line for c in cases] == [2, 5]
    report = run_cases(parse_policy(POLICY), cases)
    assert report.passed
    assert report.coverage_percent == 75.0  # 'size' was never seen to deny
    assert report.uncovered() == {"size": ["deny"]}


def test_a_failing_case_says_why(tmp_path: Path) -> None:
    text = CASES.replace("want_check: trace", "want_check: size")
    report = run_cases(parse_policy(POLICY), load_cases(write(tmp_path, text)))
    assert not report.passed
    failed = [r for r in report.results if not r.passed]
    assert failed[0].problem == "wanted check 'size' to decide, got 'trace'"


def test_fill_builds_big_payloads(tmp_path: Path) -> None:
    text = CASES + (
        "  - note: big\n    message: {type: a.b, from: x, metadata: {traceparent: t}}\n"
        "    fill: {blob: 500}\n    want: deny\n    want_check: size\n"
    )
    report = run_cases(parse_policy(POLICY), load_cases(write(tmp_path, text)))
    assert report.passed
    assert report.coverage_percent == 100.0


def test_unknown_recipient_and_bad_message_fail_the_case(tmp_path: Path) -> None:
    text = (
        "cases:\n  - {note: n, message: {type: a.b, from: x}, want: deny, recipient: ghost}\n"
        "  - {note: m, message: {type: Bad Type, from: x}, want: deny}\n"
    )
    path = write(tmp_path, text)
    report = run_cases(parse_policy(POLICY), load_cases(path))
    problems = [r.problem or "" for r in report.results]
    assert problems[0] == f"{path}:2: unknown recipient 'ghost' (known: none)"
    assert problems[1].startswith(f"{path}:3: invalid case message")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases:\n  - {note: n, message: {type: a.b, from: x}, want: maybe}\n", ":2: 'want'"),
        ("cases:\n  - {note: n, message: {}, want: deny, wnat: x}\n", "unknown case keys"),
        ("items: []\n", "'cases' list"),
        ("cases: [\n", "invalid YAML"),
        ("cases:\n  - {message: {type: a.b}, want: deny, cause: 3}\n", ":2: 'cause'"),
        ("cases:\n  - {message: {type: a.b}, want: deny, repeat: 0}\n", ":2: 'repeat'"),
        ("cases:\n  - {message: {type: a.b}, want: deny, repeat: '2'}\n", ":2: 'repeat'"),
    ],
)
def test_bad_cases_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_cases(write(tmp_path, text))


def test_cause_and_repeat_reach_the_checks(tmp_path: Path) -> None:
    policy = parse_policy("""\
apiVersion: govbus/v1
kind: Policy
metadata: {name: t, version: "1"}
spec:
  checks:
    - {id: tenants, use: tenant_isolation}
    - {id: rate, use: rate_limit, rate: 0.001, burst: 2}
""")
    cases = load_cases(
        write(
            tmp_path,
            """\
cases:
  - note: the tenant changed from its cause
    message: {type: a.b, from: x, actor: {subject: s, tenant: t2}}
    cause: {type: a.a, from: y, actor: {subject: s, tenant: t1}}
    want: deny
    want_check: tenants
  - note: the third in a burst of two
    message: {type: a.b, from: x, actor: {subject: r}}
    repeat: 3
    want: deny
    want_check: rate
  - note: another subject has its own bucket
    message: {type: a.b, from: x, actor: {subject: q}}
    repeat: 2
    want: allow
""",
        )
    )
    report = run_cases(policy, cases)
    assert [r.problem for r in report.results] == [None, None, None]
    assert report.coverage_percent == 100.0


def test_a_redaction_counts_as_the_check_acting(tmp_path: Path) -> None:
    policy = parse_policy("""\
apiVersion: govbus/v1
kind: Policy
metadata: {name: t, version: "1"}
spec:
  checks:
    - {id: pii, use: pii, action: redact, entities: [email]}
""")
    cases = load_cases(
        write(
            tmp_path,
            """\
cases:
  - {note: clean, message: {type: a.b, from: x, payload: {t: hello}}, want: allow}
  - {note: masked, message: {type: a.b, from: x, payload: {t: ana@example.com}}, want: allow}
""",
        )
    )
    report = run_cases(policy, cases)
    assert report.passed
    assert report.coverage == {"pii": frozenset({"allow", "deny"})}
