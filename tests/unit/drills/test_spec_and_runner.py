"""The drill file format, the fault triggers and the runner's handling of bad drills."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import govbus.drills.runner
from govbus.drills import (
    BrokerRestarts,
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


RESTART = GOOD.replace(
    "    - kind: agent_exception\n      agent: portfolio_advisor\n", "    - kind: bus_restart\n"
).replace("  proves: fallback\n", "  proves: publish_retry\n  bus: nats\n")


def test_bus_restart_needs_a_broker() -> None:
    text = RESTART.replace("  bus: nats\n", "")
    with pytest.raises(DrillError, match=r"x:5: spec: a bus_restart fault needs 'bus: nats'"):
        parse_drill(text, source="x")


def test_bus_restart_restarts_once_unless_told_otherwise() -> None:
    assert parse_drill(RESTART, source="x").spec.faults[0].first == 1
    assert Fault(kind="bus_restart", first=3).first == 3
    assert Fault(kind="agent_timeout", agent="a").first is None  # other kinds: every call
    assert Fault(kind="bus_restart").down_ms == 1000.0


async def test_a_missing_nats_server_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(govbus.drills.runner, "find_nats_server", lambda: None)
    result = await run_drill(parse_drill(RESTART, source="x"))
    assert not result.passed
    assert result.error is not None
    assert "bus: nats runs the drill on a private nats-server" in result.error
    assert "nats-server is not installed (not on PATH" in result.error


class FakeServer:
    """Stands in for NatsServer: records stops and starts."""

    def __init__(self, *, fail_start: bool = False) -> None:
        self.pid: int | None = 100
        self.events: list[str] = []
        self.fail_start = fail_start

    def stop(self) -> None:
        self.events.append("stop")
        self.pid = None

    def kill(self) -> None:
        self.events.append("kill")
        self.pid = None

    def start(self) -> None:
        self.events.append("start")
        if self.fail_start:
            raise RuntimeError("nats-server exited with code 1 at start")
        self.pid = 101


async def test_a_restart_stops_the_server_before_the_request_that_triggers_it() -> None:
    server = FakeServer()
    in_flight = [3]
    restarts = BrokerRestarts(
        server,  # type: ignore[arg-type]
        Trigger(Fault(kind="bus_restart", after=2, down_ms=50)),
        lambda: in_flight[0],
    )
    await restarts.before_request()
    await restarts.before_request()
    assert server.events == [] and not restarts.down
    await restarts.before_request()  # the third request: the server stops first
    assert server.events == ["stop"] and restarts.down
    await restarts.before_request()  # sent while the server is down
    await restarts.wait()
    assert server.events == ["stop", "start"] and not restarts.down
    await restarts.before_request()  # one restart (first: 1): no more
    assert server.events == ["stop", "start"]
    [done] = restarts.restarts
    assert done["in_flight_at_stop"] == 3
    assert done["sent_while_down"] == 2
    assert done["down_ms"] >= 50
    assert done["pids"] == [100, 101]


async def test_stop_kill_kills_the_server() -> None:
    server = FakeServer()
    fault = Fault(kind="bus_restart", stop="kill", down_ms=0)
    restarts = BrokerRestarts(server, Trigger(fault), lambda: 1)  # type: ignore[arg-type]
    await restarts.before_request()
    await restarts.wait()
    assert server.events == ["kill", "start"]


async def test_a_server_that_does_not_come_back_is_a_drill_error() -> None:
    restarts = BrokerRestarts(
        FakeServer(fail_start=True),  # type: ignore[arg-type]
        Trigger(Fault(kind="bus_restart", down_ms=0)),
        lambda: 0,
    )
    await restarts.before_request()
    with pytest.raises(DrillError, match="did not come back: nats-server exited with code 1"):
        await restarts.wait()
    await asyncio.wait_for(restarts.settle(), 1.0)  # settled, whatever the result
    assert restarts.restarts == [] and not restarts.down


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
