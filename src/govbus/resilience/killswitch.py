"""Kill switch: pause and resume agents at runtime, each pause with its mode.

A paused agent receives nothing. Its mode says what happens to its messages meanwhile:

- ``"fallback"``: they go to the agent's fallback at once;
- ``"hold"``: they wait (:meth:`KillSwitch.wait_resumed`) and are delivered after the resume.

Every pause and resume produces a :class:`KillSwitchEvent` for the ``on_change`` hook, which the
orchestrator turns into an audit record.

Example:
    >>> from datetime import UTC, datetime
    >>> events = []
    >>> switch = KillSwitch(clock=lambda: datetime(2026, 11, 21, tzinfo=UTC),
    ...                     on_change=events.append)
    >>> _ = switch.pause("portfolio_advisor", mode="hold", by="ops@bank", reason="bad answers")
    >>> switch.is_paused("portfolio_advisor"), switch.mode("portfolio_advisor")
    (True, 'hold')
    >>> _ = switch.resume("portfolio_advisor", by="ops@bank")
    >>> [(e.action, e.by) for e in events], switch.mode("portfolio_advisor")
    ([('pause', 'ops@bank'), ('resume', 'ops@bank')], None)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

PauseMode = Literal["fallback", "hold"]
PAUSE_MODES: tuple[PauseMode, ...] = ("fallback", "hold")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class KillSwitchEvent:
    """One pause or resume, as the audit log records it.

    Attributes:
        agent: the agent paused or resumed.
        action: ``"pause"`` or ``"resume"``.
        by: who did it (a user or service identity).
        reason: why (free text; may be empty).
        at: when, from the kill switch's UTC clock.
        mode: the pause mode for a pause; None for a resume.
    """

    agent: str
    action: Literal["pause", "resume"]
    by: str
    reason: str
    at: datetime
    mode: PauseMode | None = None


class KillSwitch:
    """The set of paused agents, with a mode per agent.

    Pausing an agent that is already paused replaces its mode and reason (and is an event of its
    own). Hooks run synchronously after the change, in the caller's task; an exception from
    ``on_change`` propagates to the caller of ``pause`` or ``resume`` after the change was
    made. Belongs to one event loop; not thread-safe.

    Args:
        clock: the UTC wall clock that stamps events (``at``), since they are audit records; the
            orchestrator passes its own clock.
        on_change: called with each :class:`KillSwitchEvent`. May also be assigned later.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utc_now,
        on_change: Callable[[KillSwitchEvent], None] | None = None,
    ) -> None:
        self.on_change = on_change
        self._clock = clock
        self._paused: dict[str, KillSwitchEvent] = {}
        self._changed: dict[str, asyncio.Event] = {}  # set (and replaced) on every change

    def pause(self, name: str, *, mode: PauseMode, by: str, reason: str = "") -> KillSwitchEvent:
        """Pause ``name`` in ``mode`` (``"fallback"`` or ``"hold"``); returns the event."""
        if mode not in PAUSE_MODES:
            raise ValueError(f"mode must be 'fallback' or 'hold', not {mode!r}")
        event = KillSwitchEvent(name, "pause", by, reason, self._clock(), mode)
        self._paused[name] = event
        self._notify(event)
        return event

    def resume(self, name: str, *, by: str, reason: str = "") -> KillSwitchEvent | None:
        """Resume ``name``; returns the event, or None (and no event) if it was not paused."""
        if self._paused.pop(name, None) is None:
            return None
        event = KillSwitchEvent(name, "resume", by, reason, self._clock())
        self._notify(event)
        return event

    def is_paused(self, name: str) -> bool:
        """Whether ``name`` is paused."""
        return name in self._paused

    def mode(self, name: str) -> PauseMode | None:
        """The pause mode of ``name``, or None if it is not paused."""
        event = self._paused.get(name)
        return None if event is None else event.mode

    @property
    def paused(self) -> Mapping[str, KillSwitchEvent]:
        """The paused agents, each with the event that paused it (a copy)."""
        return dict(self._paused)

    async def wait_resumed(self, name: str) -> None:
        """Wait while ``name`` is paused in ``"hold"`` mode.

        Returns at once if it is not held, else as soon as it no longer is: resumed, or
        re-paused with mode ``"fallback"``. Callers re-check :meth:`mode` afterwards to choose
        between delivering and the fallback. Bound the wait with the message's deadline.
        """
        while self.mode(name) == "hold":
            changed = self._changed.get(name)
            if changed is None:
                changed = self._changed[name] = asyncio.Event()
            await changed.wait()

    def _notify(self, event: KillSwitchEvent) -> None:
        changed = self._changed.pop(event.agent, None)
        if changed is not None:
            changed.set()  # wakes every waiter; each re-checks and may wait on a fresh event
        if self.on_change is not None:
            self.on_change(event)
