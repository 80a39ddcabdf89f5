"""Every drill in drills/ passes, and fails once the mechanism it proves is switched off.

A drill with ``bus: nats`` starts a private nats-server; without one (or without the nats
extra) it is skipped, or fails with ``GOVBUS_REQUIRE_SERVICES=1`` (CI has the server).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from govbus.drills import Drill, load_drill, run_drill
from govbus.drills.broker import NOT_INSTALLED, find_nats_server
from tests.conftest import skip_or_fail

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
    "bus_restart",
}


def _id(path: Path) -> str:
    return path.stem


def _load(path: Path) -> Drill:
    """The drill, once its services are known to be there (see the module docstring)."""
    drill = load_drill(path)
    if drill.spec.bus == "nats":
        if find_nats_server() is None:
            skip_or_fail(f"{path.name} runs on NATS: {NOT_INSTALLED}")
        if importlib.util.find_spec("nats") is None:
            skip_or_fail(f"{path.name} runs on NATS: the nats extra (nats-py) is not installed")
    return drill


def test_every_required_fault_kind_has_a_drill_that_names_it() -> None:
    covered = {kind for path in DRILLS for kind in load_drill(path).fault_kinds}
    assert covered >= REQUIRED_FAULTS, REQUIRED_FAULTS - covered
    for kind in REQUIRED_FAULTS:  # and its name is in a drill file, for people who grep
        assert any(kind in path.read_text() for path in DRILLS), kind


@pytest.mark.parametrize("path", DRILLS, ids=_id)
async def test_the_drill_passes(path: Path) -> None:
    result = await run_drill(_load(path))
    assert result.error is None, result.error
    assert result.passed, [c.as_dict() for c in result.failures]


@pytest.mark.parametrize("path", DRILLS, ids=_id)
async def test_the_drill_fails_without_its_mechanism(path: Path) -> None:
    drill = _load(path)
    result = await run_drill(drill, disable=[drill.spec.proves])
    assert not result.passed, (
        f"{path.name} still passes with {drill.spec.proves} switched off: it proves nothing"
    )
    assert result.disabled == [drill.spec.proves]
    if drill.spec.proves == "publish_retry":
        # For the right reason: a request published into the outage got govbus.failed.
        assert result.error is None, result.error
        assert result.evidence["bus"]["publishes_failed"] >= 1
        assert result.evidence["outcomes"].get("failed", 0) >= 1
