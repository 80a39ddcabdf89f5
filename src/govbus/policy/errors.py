"""Errors of the policy layer.

A policy file is reviewed by people, so its errors are written for people: every problem is a
:class:`PolicyIssue` naming file, line and column (1-based, like a compiler), and the loader
collects all of them before raising one :class:`PolicyError`, so a reviewer fixes a file in one
pass instead of one error at a time.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from govbus.errors import ConfigError

__all__ = [
    "CheckBuildError",
    "CheckKindError",
    "DuplicateCheckKindError",
    "ParamIssue",
    "PolicyError",
    "PolicyIssue",
    "PolicyNotFoundError",
    "did_you_mean",
]


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file.

    Attributes:
        file: the policy file's path, or a label such as ``<string>``.
        line: 1-based line of the offending node.
        column: 1-based column of the offending node.
        code: stable snake_case identifier (``unknown_key``, ``unknown_kind``, ...).
        message: what is wrong, in plain language, with a suggestion when one is known.

    Example:
        >>> str(PolicyIssue("p.yaml", 3, 5, "unknown_key", "unknown key 'chekcs'"))
        "p.yaml:3:5: unknown_key: unknown key 'chekcs'"
    """

    file: str
    line: int
    column: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.code}: {self.message}"


class PolicyError(ConfigError):
    """A policy file is invalid. ``issues`` lists every problem found, in file order.

    ``str(error)`` is one ``file:line:col: code: message`` line per issue, the format editors and
    CI annotations understand.
    """

    code = "policy_invalid"

    def __init__(self, issues: Iterable[PolicyIssue]) -> None:
        self.issues: tuple[PolicyIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues) or "invalid policy")


class PolicyNotFoundError(PolicyError):
    """The policy file does not exist."""

    code = "policy_not_found"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        super().__init__(
            [PolicyIssue(str(path), 1, 1, "policy_not_found", "policy file not found")]
        )


class CheckKindError(ConfigError):
    """A check kind cannot be registered (bad key, bad parameter model, bad summary)."""

    code = "check_kind_invalid"


class DuplicateCheckKindError(CheckKindError):
    """A check kind with the same key is already registered."""

    code = "duplicate_check_kind"


@dataclass(frozen=True, slots=True)
class ParamIssue:
    """A problem a kind's build function found in its own (already type-valid) parameters.

    ``loc`` is relative to the check entry, like a pydantic error location, e.g.
    ``("rules", 0, "roles", 1)``; the loader turns it into a line and column.
    """

    loc: tuple[str | int, ...]
    code: str
    message: str


class CheckBuildError(ConfigError):
    """Raised by a kind's build function to point at the exact parameters that are wrong.

    Any other exception from a build function is reported at the check entry itself; this one
    lets a kind (``rbac`` with an undeclared role, say) report each problem where it is.

    Example:
        >>> raise CheckBuildError([ParamIssue(("rules", 0), "bad_rule", "rule is empty")])
        Traceback (most recent call last):
        govbus.policy.errors.CheckBuildError: rules.0: bad_rule: rule is empty
    """

    code = "check_build"

    def __init__(self, issues: Sequence[ParamIssue]) -> None:
        self.issues: tuple[ParamIssue, ...] = tuple(issues)
        super().__init__(
            "\n".join(
                f"{'.'.join(str(p) for p in i.loc) or '<check>'}: {i.code}: {i.message}"
                for i in self.issues
            )
        )


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or ``""`` when none is close.

    >>> did_you_mean("chekcs", ["checks", "roles", "mode"])
    "; did you mean 'checks'?"
    """
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def yaml_error(file: object, exc: Exception) -> ConfigError:
    """A :class:`ConfigError` for a YAML syntax error, located as ``file:line:col``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
    return ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}")
