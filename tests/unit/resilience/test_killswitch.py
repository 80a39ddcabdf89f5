"""Kill switch: pause and resume agents, with a mode each, an event per change, and hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from govbus.resilience import KillSwitch, KillSwitchEvent

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def make() -> tuple[KillSwitch, list[KillSwitchEvent]]:
    events: list[KillSwitchEvent] = []
    return KillSwitch(clock=lambda: T0, on_change=events.append), events


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_nothing_is_paused_at_first() -> None:
    switch, _ = make()
    assert not switch.is_paused("advisor")
    assert switch.mode("advisor") is None
    assert switch.paused == {}


def test_pause_and_resume_change_state_and_emit_events() -> None:
    switch, events = make()
    paused = switch.pause("advisor", mode="fallback", by="ops@bank", reason="drift")
    assert switch.is_paused("advisor") and switch.mode("advisor") == "fallback"
    assert not switch.is_paused("snapshot")
    resumed = switch.resume("advisor", by="cro@bank", reason="fixed")
    assert not switch.is_paused("advisor")
    assert events == [paused, resumed]
    assert paused == KillSwitchEvent("advisor", "pause", "ops@bank", "drift", T0, "fallback")
    assert resumed == KillSwitchEvent("advisor", "resume", "cro@bank", "fixed", T0, None)


def test_resuming_an_agent_that_is_not_paused_changes_nothing() -> None:
    switch, events = make()
    assert switch.resume("advisor", by="ops@bank") is None
    assert events == []


def test_pausing_again_replaces_the_mode_and_is_an_event() -> None:
    switch, events = make()
    switch.pause("advisor", mode="fallback", by="ops@bank")
    switch.pause("advisor", mode="hold", by="cro@bank", reason="hold for review")
    assert switch.mode("advisor") == "hold"
    assert [(e.action, e.mode, e.by) for e in events] == [
        ("pause", "fallback", "ops@bank"),
        ("pause", "hold", "cro@bank"),
    ]
    assert switch.paused["advisor"].reason == "hold for review"


def test_the_paused_mapping_is_a_copy() -> None:
    switch, _ = make()
    switch.pause("advisor", mode="hold", by="ops@bank")
    snapshot = switch.paused
    switch.resume("advisor", by="ops@bank")
    assert list(snapshot) == ["advisor"]
    assert switch.paused == {}


def test_an_unknown_mode_is_refused() -> None:
    switch, events = make()
    with pytest.raises(ValueError, match="mode"):
        switch.pause("advisor", mode="drop", by="ops@bank")  # type: ignore[arg-type]
    assert events == [] and not switch.is_paused("advisor")


def test_events_are_stamped_by_the_wall_clock_by_default() -> None:
    event = KillSwitch().pause("advisor", mode="hold", by="ops@bank")
    assert event.at.tzinfo is not None
    assert abs((datetime.now(UTC) - event.at).total_seconds()) < 60


async def test_wait_resumed_returns_at_once_unless_held() -> None:
    switch, _ = make()
    await switch.wait_resumed("advisor")  # not paused
    switch.pause("advisor", mode="fallback", by="ops@bank")
    await switch.wait_resumed("advisor")  # paused, but its messages go to the fallback


async def test_held_waiters_are_released_by_the_resume() -> None:
    switch, _ = make()
    switch.pause("advisor", mode="hold", by="ops@bank")
    waiters = [asyncio.create_task(switch.wait_resumed("advisor")) for _ in range(10)]
    other = asyncio.create_task(switch.wait_resumed("snapshot"))
    await settle()
    assert other.done()
    assert not any(w.done() for w in waiters)
    switch.resume("advisor", by="ops@bank")
    await asyncio.wait_for(asyncio.gather(*waiters), timeout=5)  # guard against a hang


async def test_a_changed_hold_keeps_waiters_held() -> None:
    switch, _ = make()
    switch.pause("advisor", mode="hold", by="ops@bank")
    waiter = asyncio.create_task(switch.wait_resumed("advisor"))
    await settle()
    switch.pause("advisor", mode="hold", by="cro@bank", reason="longer review")
    await settle()
    assert not waiter.done()
    switch.resume("advisor", by="cro@bank")
    await asyncio.wait_for(waiter, timeout=5)


async def test_a_hold_switched_to_fallback_releases_the_waiters() -> None:
    switch, _ = make()
    switch.pause("advisor", mode="hold", by="ops@bank")
    waiter = asyncio.create_task(switch.wait_resumed("advisor"))
    await settle()
    switch.pause("advisor", mode="fallback", by="ops@bank")
    await asyncio.wait_for(waiter, timeout=5)
    assert switch.mode("advisor") == "fallback"  # the caller re-checks and takes the fallback


async def test_a_resume_followed_by_a_new_hold_before_the_waiter_runs_keeps_it_held() -> None:
    switch, _ = make()
    switch.pause("advisor", mode="hold", by="ops@bank")
    waiter = asyncio.create_task(switch.wait_resumed("advisor"))
    await settle()
    switch.resume("advisor", by="ops@bank")
    switch.pause("advisor", mode="hold", by="ops@bank")
    await settle()
    assert not waiter.done()
    switch.resume("advisor", by="ops@bank")
    await asyncio.wait_for(waiter, timeout=5)
