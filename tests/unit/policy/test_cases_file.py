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
    ],
)
def test_bad_cases_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_cases(write(tmp_path, text))
