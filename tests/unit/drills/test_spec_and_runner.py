"""The drill file format, the fault triggers and the runner's handling of bad drills."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from govbus.drills import (
    Fault,
    Trigger,
    drill_schema,
    find_drills,
    generated_schema,
    load_drill,
    parse_drill,
    run_drill,
)
from govbus.errors import DrillError

GOOD = """\
apiVersion: govbus/v1
kind: Drill
metadata: {name: tiny}
spec:
  proves: fallback
  faults:
    - kind: agent_exception
      agent: portfolio_advisor
  messages:
    - type: advisory.request
      from: advisor-portal
      actor: {subject: asha.rao, roles: [advisor], tenant: retail-eu}
      payload: {account: A-100}
  expect:
    fallback_fired: exception
"""


def test_the_shipped_schema_is_the_generated_one() -> None:
    # Regenerate with: python -c "from govbus.drills.spec import generated_schema; ..." (see
    # drills/README.md); a model change without it fails here.
    assert drill_schema() == generated_schema()


def test_a_good_drill_parses() -> None:
    drill = parse_drill(GOOD, source="tiny.yaml")
    assert drill.name == "tiny"
    assert drill.fault_kinds == ["agent_exception"]
    assert drill.spec.messages[0].sender == "advisor-portal"


def test_an_unknown_key_is_reported_with_its_line() -> None:
    text = GOOD.replace("      agent: portfolio_advisor\n", "      agnet: portfolio_advisor\n")
    with pytest.raises(DrillError) as info:
        parse_drill(text, source="tiny.yaml")
    assert str(info.value) == "tiny.yaml:8: spec.faults.0.agnet: Extra inputs are not permitted"


def test_an_unknown_fault_kind_is_reported() -> None:
    text = GOOD.replace("kind: agent_exception", "kind: agent_explodes")
    with pytest.raises(DrillError, match=r"tiny.yaml:7: spec.faults.0.kind: Input should be"):
        parse_drill(text, source="tiny.yaml")


def test_broken_yaml_is_located() -> None:
    with pytest.raises(DrillError, match=r"tiny.yaml:4:1: invalid YAML"):
        parse_drill("apiVersion: govbus/v1\nkind: Drill\nmetadata: {name: [\n", source="tiny.yaml")


def test_a_drill_must_prove_a_known_mechanism() -> None:
    with pytest.raises(DrillError, match=r"spec\.proves"):
        parse_drill(GOOD.replace("proves: fallback", "proves: luck"), source="x.yaml")


def test_missing_files_and_empty_directories_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DrillError, match="no such drill file"):
        find_drills([tmp_path / "nope.yaml"])
    with pytest.raises(DrillError, match="no drill files"):
        find_drills([tmp_path])
    with pytest.raises(DrillError, match="drill file not found"):
        load_drill(tmp_path / "gone.yaml")


def test_triggers_skip_then_hit_first_n() -> None:
    trigger = Trigger(Fault(kind="llm_error", after=2, first=3))
    assert [trigger.fire() for _ in range(8)] == [False, False, True, True, True] + [False] * 3
    assert (trigger.calls, trigger.hits) == (8, 3)


@given(st.integers(0, 1000), st.floats(0.01, 1.0))
def test_a_seeded_rate_is_repeatable(seed: int, rate: float) -> None:
    fault = Fault(kind="llm_error", rate=rate, seed=seed)
    first, second = Trigger(fault), Trigger(fault)
    assert [first.fire() for _ in range(50)] == [second.fire() for _ in range(50)]


async def test_an_unknown_agent_is_a_drill_error_not_a_crash() -> None:
    drill = parse_drill(GOOD.replace("agent: portfolio_advisor", "agent: ghost"), source="x")
    result = await run_drill(drill)
    assert not result.passed
    assert result.error is not None and "agent 'ghost'" in result.error


async def test_a_bad_app_reference_is_reported() -> None:
    text = GOOD.replace("  proves: fallback\n", "  proves: fallback\n  app: no.such.module:make\n")
    result = await run_drill(parse_drill(text, source="x"))
    assert result.error is not None and "cannot import module 'no.such.module'" in result.error


async def test_bus_restart_needs_a_broker() -> None:
    text = GOOD.replace("    - kind: agent_exception\n      agent: portfolio_advisor\n",
                        "    - kind: bus_restart\n")  # fmt: skip
    result = await run_drill(parse_drill(text, source="x"))
    assert result.error is not None and "NatsBus" in result.error


async def test_an_unknown_mechanism_cannot_be_disabled() -> None:
    with pytest.raises(DrillError, match="known mechanisms are fallback"):
        await run_drill(parse_drill(GOOD, source="x"), disable=["luck"])


async def test_a_fault_that_never_fires_fails_the_drill() -> None:
    # The advisor is only reached for known accounts; this drill's messages never reach it.
    text = GOOD.replace("payload: {account: A-100}", "payload: {account: UNKNOWN}")
    result = await run_drill(parse_drill(text, source="x"))
    assert next(c.name for c in result.failures) == "fault agent_exception injected"


def test_a_fault_missing_what_it_needs_says_so() -> None:
    text = GOOD.replace("      agent: portfolio_advisor\n", "")
    with pytest.raises(DrillError, match=r"needs 'agent' \(the agent it hits\)"):
        parse_drill(text, source="tiny.yaml")
