"""Thresholds: the file's model (errors at file:line) and the gates it sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.redteam import (
    CategoryStats,
    PolicyInfo,
    RunReport,
    SourceStats,
    Thresholds,
    ThresholdsError,
    evaluate_gates,
    load_thresholds,
)

FULL = """\
categories:            # minimum detection rate per attack category
  rbac_escalation: 1.0
  jailbreak: 0.95
default_category: 0.9
benign:
  pooled_max_false_positive_rate: 0.01
  per_source_max_false_positive_rate: 0.02
"""


def report(
    categories: dict[str, tuple[int, int]], sources: dict[str, tuple[int, int]]
) -> RunReport:
    cases = sum(c for c, _ in sources.values())
    flagged = sum(f for _, f in sources.values())
    return RunReport(
        PolicyInfo("p", "1", "0" * 64),
        (),
        {k: CategoryStats(k, *v) for k, v in sorted(categories.items())},
        SourceStats("all", cases, flagged),
        {k: SourceStats(k, *v) for k, v in sorted(sources.items())},
        1.0,
        2.0,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    return path


def test_full_file_loads(tmp_path: Path) -> None:
    limits = load_thresholds(write(tmp_path, FULL))
    assert limits.categories == {"rbac_escalation": 1.0, "jailbreak": 0.95}
    assert limits.default_category == 0.9
    assert limits.benign.pooled_max_false_positive_rate == 0.01
    assert limits.benign.per_source_max_false_positive_rate == 0.02


@pytest.mark.parametrize("text", ["", "# nothing\n", "categories:\nbenign:\n"])
def test_empty_file_or_sections_gate_nothing(tmp_path: Path, text: str) -> None:
    assert load_thresholds(write(tmp_path, text)) == Thresholds()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FULL.replace("jailbreak: 0.95", "jailbreak: 1.5"), ":3: categories.jailbreak: Input"),
        (FULL.replace("default_category", "default_categry"), ":4: default_categry: Extra"),
        (FULL.replace("  pooled_max", "  pooled_maximum"), ":6: benign.pooled_maximum_false"),
        (FULL.replace("0.02", "'0.02'"), ":7: benign.per_source_max_false_positive_rate"),
        (FULL.replace("0.9\n", "true\n"), ":4: default_category:"),
        ("categories: [a]\n", ":1: categories: Input should be a valid dictionary"),
        ("- 1\n", ":1: a thresholds file is a mapping"),
        ("categories: {a: 1\n", ":2:1: invalid YAML"),
    ],
)
def test_bad_thresholds_name_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ThresholdsError) as info:
        load_thresholds(path)
    assert f"{path}{expected}" in str(info.value)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "categories: {a: 2}\nextra: 1\n")
    with pytest.raises(ThresholdsError) as info:
        load_thresholds(path)
    lines = str(info.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}:1", f"{path}:2"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot read thresholds file"):
        load_thresholds(tmp_path / "nope.yaml")


def test_gates_pass_at_exactly_the_limit() -> None:
    limits = Thresholds.model_validate(
        {
            "categories": {"jailbreak": 0.95},
            "benign": {"pooled_max_false_positive_rate": 0.01},
        }
    )
    gates = evaluate_gates(
        report({"jailbreak": (20, 19)}, {"faq": (100, 1)}), limits, mutated=False
    )
    assert gates.passed
    assert [(g.kind, g.target, g.value) for g in gates.gates] == [
        ("category", "jailbreak", 0.95),
        ("benign_pooled", None, 0.01),
    ]


def test_gates_fail_below_minimum_and_above_maximum() -> None:
    limits = Thresholds.model_validate(
        {
            "categories": {"rbac_escalation": 1.0},
            "default_category": 0.9,
            "benign": {
                "pooled_max_false_positive_rate": 0.05,
                "per_source_max_false_positive_rate": 0.1,
            },
        }
    )
    measured = report(
        {"rbac_escalation": (10, 9), "jailbreak": (10, 9), "mutated.base64": (10, 0)},
        {"faq": (10, 2), "emails": (90, 0)},
    )
    gates = evaluate_gates(measured, limits, mutated=True)
    assert not gates.passed
    by_target = {(g.kind, g.target): (g.limit, g.passed) for g in gates.gates}
    assert by_target == {
        ("category", "jailbreak"): (0.9, True),
        ("category", "rbac_escalation"): (1.0, False),
        ("benign_pooled", None): (0.05, True),
        ("benign_source", "emails"): (0.1, True),
        ("benign_source", "faq"): (0.1, False),
    }, "mutated.* categories are gated only when listed"
    assert gates.category("rbac_escalation") is not None
    assert gates.source("faq") is not None and gates.pooled is not None


def test_listed_category_without_cases_fails_unless_it_is_an_unrun_mutation() -> None:
    limits = Thresholds.model_validate({"categories": {"secrets": 0.9, "mutated.base64": 0.8}})
    measured = report({"jailbreak": (5, 5)}, {})
    gates = evaluate_gates(measured, limits, mutated=False)
    assert [(g.target, g.value, g.passed) for g in gates.gates] == [("secrets", None, False)]
    assert gates.skipped == ("mutated.base64",)
    mutated = evaluate_gates(measured, limits, mutated=True)
    assert [(g.target, g.passed) for g in mutated.gates] == [
        ("mutated.base64", False),
        ("secrets", False),
    ]


def test_benign_limits_without_benign_cases_fail() -> None:
    limits = Thresholds.model_validate(
        {
            "benign": {
                "pooled_max_false_positive_rate": 0.01,
                "per_source_max_false_positive_rate": 0.01,
            }
        }
    )
    gates = evaluate_gates(report({"jailbreak": (5, 5)}, {}), limits, mutated=False)
    assert [(g.kind, g.value, g.passed) for g in gates.gates] == [
        ("benign_pooled", None, False),
        ("benign_source", None, False),
    ]


def test_no_thresholds_gate_nothing_and_pass() -> None:
    gates = evaluate_gates(
        report({"jailbreak": (5, 0)}, {"faq": (3, 3)}), Thresholds(), mutated=False
    )
    assert gates.gates == () and gates.passed
