"""The red-team gate: minimum detection rates and maximum false-positive rates.

``redteam/thresholds.yaml``::

    categories:                 # minimum detection rate per attack category (point estimate)
      rbac_escalation: 1.0
      jailbreak: 0.95
    default_category: 0.95      # for categories not listed (omit: unlisted ones are not gated)
    benign:
      pooled_max_false_positive_rate: 0.01
      per_source_max_false_positive_rate: 0.02

Mutated categories (``mutated.*``) are gated only when listed. A listed category with no cases
fails its gate (a corpus that lost a category must not pass quietly), except a ``mutated.*``
category in a run without ``--mutate``, which is skipped. A benign limit with no benign cases
to measure fails too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    ValidationError,
    field_validator,
)

from govbus.errors import ConfigError
from govbus.policy.errors import yaml_error
from govbus.policy.loader import node_positions
from govbus.redteam.cases import MUTATED_PREFIX
from govbus.redteam.runner import RunReport, SourceStats

__all__ = [
    "BenignThresholds",
    "Gate",
    "GateReport",
    "Thresholds",
    "ThresholdsError",
    "evaluate_gates",
    "load_thresholds",
]

Rate = Annotated[StrictFloat, Field(ge=0, le=1)]  # strict: whole numbers are accepted, "0.5" not
# Rates are ratios of small integers; this keeps 0.95 >= 0.95 true whatever the rounding.
_EPSILON = 1e-9


class ThresholdsError(ConfigError):
    """The thresholds file is unreadable or invalid; each line names ``file:line``."""

    code = "redteam_thresholds_invalid"


class BenignThresholds(BaseModel):
    """Maximum false-positive rates of benign cases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pooled_max_false_positive_rate: Rate | None = None
    per_source_max_false_positive_rate: Rate | None = None


class Thresholds(BaseModel):
    """What the red-team run must reach (see the module docs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[Annotated[str, Field(min_length=1)], Rate] = Field(default_factory=dict)
    default_category: Rate | None = None
    benign: BenignThresholds = Field(default_factory=BenignThresholds)

    @field_validator("categories", "benign", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        # "categories:" with nothing under it is YAML for null: read it as an empty section.
        return {} if value is None else value


def load_thresholds(path: str | Path) -> Thresholds:
    """Read and validate a thresholds file.

    Raises:
        ThresholdsError: the file is missing, not YAML, or has unknown keys or bad values
            (one ``file:line: key: problem`` line per problem).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsError(f"{file}: cannot read thresholds file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ThresholdsError(f"{file}: thresholds file is not UTF-8: {exc.reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ThresholdsError(str(yaml_error(file, exc))) from None
    if data is None:
        return Thresholds()
    if not isinstance(data, dict):
        raise ThresholdsError(f"{file}:1: a thresholds file is a mapping")
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        positions = node_positions(text)
        lines = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            line = positions.at(loc, key=error["type"] == "extra_forbidden")[0]
            name = ".".join(str(part) for part in loc) or "<file>"
            lines.append(f"{file}:{line}: {name}: {error['msg']}")
        raise ThresholdsError("\n".join(lines)) from None


@dataclass(frozen=True, slots=True)
class Gate:
    """One limit and whether the run met it.

    Attributes:
        kind: ``category`` (minimum detection rate), ``benign_pooled`` or ``benign_source``
            (maximum false-positive rate).
        target: the category or source (None for the pooled benign rate).
        limit: the minimum or maximum rate.
        value: the measured rate, or None when there were no cases to measure.
        passed: True when the value is within the limit.
    """

    kind: Literal["category", "benign_pooled", "benign_source"]
    target: str | None
    limit: float
    value: float | None
    passed: bool

    @property
    def metric(self) -> str:
        return "detection_rate" if self.kind == "category" else "false_positive_rate"

    @property
    def bound(self) -> Literal["min", "max"]:
        return "min" if self.kind == "category" else "max"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.kind,
            "target": self.target,
            "metric": self.metric,
            self.bound: self.limit,
            "value": self.value,
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class GateReport:
    """Every gate checked, and listed categories skipped (``mutated.*`` without ``--mutate``)."""

    gates: tuple[Gate, ...]
    skipped: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def category(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.kind == "category" and g.target == name), None)

    def source(self, name: str) -> Gate | None:
        return next((g for g in self.gates if g.kind == "benign_source" and g.target == name), None)

    @property
    def pooled(self) -> Gate | None:
        return next((g for g in self.gates if g.kind == "benign_pooled"), None)


def evaluate_gates(report: RunReport, thresholds: Thresholds, *, mutated: bool) -> GateReport:
    """Check ``report`` against ``thresholds``; ``mutated`` says whether variants were run.

    Example:
        >>> from govbus.redteam.runner import CategoryStats, PolicyInfo, RunReport, SourceStats
        >>> report = RunReport(PolicyInfo("p", "1", "0" * 64), (),
        ...                    {"jailbreak": CategoryStats("jailbreak", 20, 19)},
        ...                    SourceStats("all", 0, 0), {}, 0.0, 0.0)
        >>> gates = evaluate_gates(report, Thresholds(default_category=0.95), mutated=False)
        >>> gates.passed, gates.gates[0].value
        (True, 0.95)
    """
    gates: list[Gate] = []
    skipped: list[str] = []
    for name in sorted(set(thresholds.categories) | set(report.categories)):
        limit = thresholds.categories.get(name)
        if limit is None and not name.startswith(MUTATED_PREFIX):
            limit = thresholds.default_category
        if limit is None:
            continue
        stats = report.categories.get(name)
        if stats is None and name.startswith(MUTATED_PREFIX) and not mutated:
            skipped.append(name)
            continue
        value = stats.detection_rate if stats is not None else None
        passed = value is not None and value >= limit - _EPSILON
        gates.append(Gate("category", name, float(limit), value, passed))
    benign = thresholds.benign
    if benign.pooled_max_false_positive_rate is not None:
        gates.append(
            _max_gate("benign_pooled", None, benign.pooled_max_false_positive_rate, report.benign)
        )
    per_source = benign.per_source_max_false_positive_rate
    if per_source is not None:
        for source, counts in report.by_source.items():
            gates.append(_max_gate("benign_source", source, per_source, counts))
        if not report.by_source:  # a limit on nothing measured is not met
            gates.append(_max_gate("benign_source", None, per_source, report.benign))
    return GateReport(tuple(gates), tuple(skipped))


def _max_gate(
    kind: Literal["benign_pooled", "benign_source"],
    target: str | None,
    limit: float,
    stats: SourceStats,
) -> Gate:
    value = stats.false_positive_rate if stats.cases else None
    return Gate(kind, target, float(limit), value, value is not None and value <= limit + _EPSILON)
