"""Every drill in drills/ passes, and fails once the mechanism it proves is switched off."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.drills import load_drill, run_drill

DRILLS = sorted((Path(__file__).resolve().parents[3] / "drills").glob("*.yaml"))
REQUIRED_FAULTS = {
    "agent_timeout",
    "agent_exception",
    "agent_slow",
    "llm_error",
    "llm_timeout",
    "budget_exhausted",
    "circuit_open",
    "audit_down",
    "poison_message",
    "duplicate_delivery",
}


def _id(path: Path) -> str:
    return path.stem


def test_every_required_fault_kind_has_a_drill_that_names_it() -> None:
    covered = {kind for path in DRILLS for kind in load_drill(path).fault_kinds}
    assert covered >= REQUIRED_FAULTS, REQUIRED_FAULTS - covered
    for kind in REQUIRED_FAULTS:  # and its name is in a drill file, for people who grep
        assert any(kind in path.read_text() for path in DRILLS), kind


@pytest.mark.parametrize("path", DRILLS, ids=_id)
async def test_the_drill_passes(path: Path) -> None:
    result = await run_drill(load_drill(path))
    assert result.error is None, result.error
    assert result.passed, [c.as_dict() for c in result.failures]


@pytest.mark.parametrize("path", DRILLS, ids=_id)
async def test_the_drill_fails_without_its_mechanism(path: Path) -> None:
    drill = load_drill(path)
    result = await run_drill(drill, disable=[drill.spec.proves])
    assert not result.passed, (
        f"{path.name} still passes with {drill.spec.proves} switched off: it proves nothing"
    )
    assert result.disabled == [drill.spec.proves]
