"""Policy errors: one file:line:col line per issue, stable codes."""

from __future__ import annotations

import pytest

from govbus.errors import ConfigError
from govbus.policy import PolicyError, PolicyIssue, PolicyNotFoundError
from govbus.policy.errors import CheckBuildError, ParamIssue, did_you_mean


def test_issue_str_is_file_line_col_code_message() -> None:
    issue = PolicyIssue("p.yaml", 3, 5, "unknown_key", "unknown key 'chekcs'")
    assert str(issue) == "p.yaml:3:5: unknown_key: unknown key 'chekcs'"


def test_policy_error_lists_every_issue_one_per_line() -> None:
    issues = [
        PolicyIssue("p.yaml", 1, 1, "a", "first"),
        PolicyIssue("p.yaml", 9, 2, "b", "second"),
    ]
    error = PolicyError(issues)
    assert str(error) == "p.yaml:1:1: a: first\np.yaml:9:2: b: second"
    assert error.issues == tuple(issues)
    assert error.code == "policy_invalid"
    assert isinstance(error, ConfigError)


def test_policy_not_found_is_a_policy_error_with_its_own_code() -> None:
    error = PolicyNotFoundError("policies/missing.yaml")
    assert error.code == "policy_not_found"
    assert str(error) == "policies/missing.yaml:1:1: policy_not_found: policy file not found"
    with pytest.raises(PolicyError):
        raise error


def test_check_build_error_carries_located_issues() -> None:
    error = CheckBuildError([ParamIssue(("rules", 0, "roles", 1), "undeclared_role", "x")])
    assert str(error) == "rules.0.roles.1: undeclared_role: x"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("chekcs", "; did you mean 'checks'?"),
        ("lenght", "; did you mean 'length'?"),
        ("zzzz", ""),
    ],
)
def test_did_you_mean(word: str, expected: str) -> None:
    assert did_you_mean(word, ["checks", "length", "roles"]) == expected
