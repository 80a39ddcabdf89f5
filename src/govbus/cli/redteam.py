"""``govbus redteam run``: the red-team corpus against a policy, as a CI gate."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from govbus.cli.policy import _example_cards
from govbus.examples.finance.app import default_policy_path
from govbus.policy import load_policy
from govbus.redteam import (
    CaseResult,
    Thresholds,
    evaluate_gates,
    load_corpus,
    load_thresholds,
    mutate_cases,
    render_table,
    report_json,
    report_junit,
    run_redteam,
)

DEFAULT_POLICY = Path("policies/default.yaml")
DEFAULT_CORPUS = Path("redteam/corpus")
DEFAULT_THRESHOLDS = Path("redteam/thresholds.yaml")


def redteam_run(
    *,
    policy: str | None = None,
    corpus: Sequence[str] | None = None,
    thresholds: str | None = None,
    mutate: int = 0,
    seed: int = 0,
    output: str = "table",
    progress: bool = True,
) -> int:
    """Run the corpus; exit 0 when every gate is met, 1 when one is missed (2: bad input)."""
    notes = Console(stderr=True, highlight=False)
    policy_file = Path(policy) if policy is not None else _default_policy()
    loaded = load_policy(policy_file)
    cases = load_corpus(corpus or [DEFAULT_CORPUS])
    variants = mutate_cases(cases, mutate, seed) if mutate else []
    thresholds_file: Path | None = Path(thresholds) if thresholds is not None else None
    if thresholds_file is None and DEFAULT_THRESHOLDS.is_file():
        thresholds_file = DEFAULT_THRESHOLDS
    limits = load_thresholds(thresholds_file) if thresholds_file is not None else Thresholds()
    if thresholds_file is None:
        notes.print(f"note: no thresholds file ({DEFAULT_THRESHOLDS} not found): nothing is gated")
    everything = [*cases, *variants]
    show = progress and sys.stderr.isatty()
    with _progress(len(everything), enabled=show) as advance:
        report = run_redteam(loaded, everything, _example_cards(), on_result=advance)
    gates = evaluate_gates(report, limits, mutated=bool(mutate))
    if output == "json":
        print(json.dumps(report_json(report, gates, thresholds_file), indent=2))
    elif output == "junit":
        print(report_junit(report))
    else:
        notes.print(
            f"policy {policy_file} ({loaded.name} {loaded.version}), {len(cases)} cases"
            + (f" + {len(variants)} variants (seed {seed})" if variants else "")
        )
        render_table(report, gates, _stdout_console())
    return 0 if gates.passed else 1


def _stdout_console() -> Console:
    """A console for stdout; 120 columns when it is a log file rather than a terminal (rich's
    default there, 80, would fold long category names), unless ``COLUMNS`` says otherwise."""
    console = Console()
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(width=120)


def _default_policy() -> Path:
    """``policies/default.yaml`` here, else the policy shipped in the package."""
    return DEFAULT_POLICY if DEFAULT_POLICY.is_file() else default_policy_path()


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[CaseResult], None] | None]:
    """A transient progress bar on stderr; yields the per-case callback (None when disabled)."""
    if not enabled:
        yield None
        return
    columns = (TextColumn("red team"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("cases", total=total)
        yield lambda _result: bar.advance(task)
