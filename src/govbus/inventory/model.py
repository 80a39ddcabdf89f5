"""The AI inventory of an app, built from what runs: its registry, its orchestrator's live
counters, circuit breakers and kill switch, and its active policy with the approval record.

Nothing here speaks HTTP: the ASGI app (:mod:`govbus.inventory.app`) and ``govbus inventory``
(offline) both serve the documents built here, so the endpoint and the printed inventory
cannot drift from each other, nor from the registry.

An agent's ``status`` is, in this order of precedence:

- ``paused``: the kill switch holds it (``App.pause``);
- ``circuit_open``: its circuit breaker is open (its fallback answers at once);
- ``degraded``: its breaker is half-open (probing), or it failed or fell back *recently*: a
  fallback or failure was counted within the last ``window`` seconds (default 300, five
  minutes), as seen by an :class:`Activity` sampling the app's counters;
- ``healthy``: none of these.

Example:
    >>> import govbus
    >>> app = govbus.App("demo", audit="memory://")
    >>> @app.agent("echo", handles="echo.*", owner="platform team")
    ... async def echo(msg, ctx):
    ...     return None
    >>> doc = build_inventory(app)
    >>> [(a["name"], a["owner"], a["status"]) for a in doc["agents"]]
    [('echo', 'platform team', 'healthy')]
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Final, Literal

from govbus.errors import ConfigError
from govbus.orchestrator import App
from govbus.policy.approvals import Approval, find_approval, load_approvals
from govbus.policy.review import explain
from govbus.registry import AgentCard

Status = Literal["healthy", "degraded", "circuit_open", "paused"]
#: Every status an agent can have, from the best to the one that needs a person most.
STATUSES: Final[tuple[Status, ...]] = ("healthy", "degraded", "circuit_open", "paused")

#: Seconds a fallback or failure keeps an agent ``degraded``, and the span of recent counts.
DEFAULT_WINDOW: Final = 300.0
#: Seconds between the samples an :class:`Activity` keeps.
DEFAULT_RESOLUTION: Final = 5.0

_DENIED: Final = "denied:"


def _version() -> str:
    try:
        return metadata.version("govbus")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Activity:
    """Recent activity of an app: its orchestrator's running totals, sampled over time.

    The orchestrator counts denials per check, and fallbacks and failures per agent, since it
    started. An ``Activity`` keeps samples of those totals at least ``resolution`` seconds
    apart, covering the last ``window`` seconds, so it can tell how many happened recently
    (the current totals less the newest sample at least ``window`` old, or the oldest sample
    while the window is not yet covered) and when each agent last gained a fallback or a
    failure (for the ``degraded`` status). :meth:`observe` takes a sample; the HTTP server
    calls it every ``resolution`` seconds and on every inventory request, so those times are
    exact to within ``resolution``. A fallback or failure counted before the first sample is
    dated at the first sample (when it happened is unknown; the agent shows ``degraded`` for
    one window).

    Args:
        app: the app whose orchestrator is read.
        window: seconds that count as recent (default 300).
        resolution: seconds between kept samples (default 5).
        clock: monotonic seconds (tests inject a fake one).

    Example:
        >>> import govbus
        >>> now = [0.0]
        >>> app = govbus.App("demo", audit="memory://")
        >>> activity = Activity(app, window=60.0, clock=lambda: now[0])
        >>> activity.observe()
        >>> app.orchestrator.stats["advisor"] = govbus.orchestrator.AgentStats(fallbacks=2)
        >>> now[0] = 10.0
        >>> activity.recent()["fallbacks_by_agent"], activity.degraded("advisor")
        ({'advisor': 2}, True)
        >>> now[0] = 71.0
        >>> activity.recent()["fallbacks_by_agent"], activity.degraded("advisor")
        ({}, False)
    """

    def __init__(
        self,
        app: App,
        *,
        window: float = DEFAULT_WINDOW,
        resolution: float = DEFAULT_RESOLUTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0 or resolution <= 0:
            raise ValueError("window and resolution must be positive")
        self.app = app
        self.window = window
        self.resolution = resolution
        self._clock = clock
        self._samples: deque[tuple[float, Counter[tuple[str, str]]]] = deque()
        self._troubles: dict[str, int] = {}  # fallbacks + failures per agent, last seen
        self._troubled_at: dict[str, float] = {}  # when each agent's count last grew

    def _read(self) -> Counter[tuple[str, str]]:
        orch = self.app.orchestrator
        counts: Counter[tuple[str, str]] = Counter()
        for key, value in orch.counters.items():
            if key.startswith(_DENIED):
                counts["denied", key[len(_DENIED) :]] = value
        for name, stats in list(orch.stats.items()):
            counts["fallbacks", name] = stats.fallbacks
            counts["failures", name] = stats.failures
        return counts

    def observe(self) -> None:
        """Take a sample now (kept if the last kept one is ``resolution`` seconds old)."""
        self._observe(self._clock(), self._read())

    def _observe(self, now: float, counts: Counter[tuple[str, str]]) -> None:
        for kind, name in counts:
            if kind == "denied":
                continue
            troubles = counts["fallbacks", name] + counts["failures", name]
            if troubles > self._troubles.get(name, 0):
                self._troubled_at[name] = now
            self._troubles[name] = troubles
        if not self._samples or now - self._samples[-1][0] >= self.resolution:
            self._samples.append((now, counts))
        # Keep one sample at least a window old (the baseline), and everything after it.
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def degraded(self, agent: str) -> bool:
        """Whether ``agent`` fell back or failed within the last ``window`` seconds."""
        at = self._troubled_at.get(agent)
        return at is not None and self._clock() - at < self.window

    def recent(self) -> dict[str, Any]:
        """Counts over the recent window: ``denied_by_check``, ``fallbacks_by_agent`` and
        ``failures_by_agent`` (only non-zero entries), with ``window_seconds`` and
        ``observed_seconds`` (how much of the window the samples cover)."""
        now = self._clock()
        current = self._read()
        self._observe(now, current)
        start, baseline = self._samples[0]
        delta = current - baseline  # Counter subtraction keeps positive counts only
        by_kind: dict[str, dict[str, int]] = {"denied": {}, "fallbacks": {}, "failures": {}}
        for (kind, name), value in sorted(delta.items()):
            by_kind[kind][name] = value
        return {
            "window_seconds": self.window,
            "observed_seconds": round(min(now - start, self.window), 3),
            "denied_by_check": by_kind["denied"],
            "fallbacks_by_agent": by_kind["fallbacks"],
            "failures_by_agent": by_kind["failures"],
        }


def agent_status(app: App, name: str, activity: Activity | None = None) -> Status:
    """The status of agent ``name`` (see the module docs for the rules)."""
    orch = app.orchestrator
    if orch.killswitch.is_paused(name):
        return "paused"
    breaker = orch.breaker_states().get(name, "closed")
    if breaker == "open":
        return "circuit_open"
    if breaker == "half_open" or (activity is not None and activity.degraded(name)):
        return "degraded"
    return "healthy"


def policy_approval(app: App) -> tuple[Approval | None, str | None]:
    """The approval record of the app's active policy, and why it could not be read (or
    None). An approval found by the app at start (strict mode) is used as is; otherwise the
    app's approvals file is read now, so a new approval shows without a restart."""
    approval = app.approval
    if approval is not None and approval.sha256 == app.policy.sha256:
        return approval, None
    try:
        return find_approval(app.policy, load_approvals(app.approvals_path)), None
    except ConfigError as exc:
        return None, str(exc)


def policy_summary(app: App, approval: Approval | None = None) -> dict[str, Any]:
    """The active policy's identity and approval, as ``/v1/inventory`` shows it."""
    policy = app.policy
    return {
        "name": policy.name,
        "version": policy.version,
        "sha256": policy.sha256,
        "mode": policy.mode,
        "approved": approval is not None,
        "approved_by": approval.approver if approval is not None else None,
        "approved_on": approval.date.isoformat() if approval is not None else None,
        "approval_reference": approval.reference if approval is not None else None,
    }


def agent_entry(app: App, card: AgentCard, activity: Activity | None = None) -> dict[str, Any]:
    """One agent as the inventory lists it: its card, status, pause and counters."""
    orch = app.orchestrator
    stats = orch.stats.get(card.name)
    paused = orch.killswitch.paused.get(card.name)
    return {
        "name": card.name,
        "version": card.version,
        "description": card.description,
        "owner": card.owner,
        "handles": list(card.handles),
        "risk": card.risk.value,
        "clearance": card.clearance.value,
        "region": card.region,
        "model": (
            None
            if card.model is None
            else {"provider": card.model.provider, "name": card.model.name}
        ),
        "deterministic": card.deterministic,
        "fallback": card.fallback,
        "timeout_seconds": card.timeout,
        "tags": list(card.tags),
        "status": agent_status(app, card.name, activity),
        "breaker": orch.breaker_states().get(card.name, "closed"),
        "paused": (
            None
            if paused is None
            else {
                "by": paused.by,
                "reason": paused.reason,
                "mode": paused.mode,
                "at": _iso(paused.at),
            }
        ),
        "counters": {
            "handled": stats.handled if stats is not None else 0,
            "denied": stats.denied if stats is not None else 0,
            "fallbacks": stats.fallbacks if stats is not None else 0,
            "failures": stats.failures if stats is not None else 0,
            "last_seen": _iso(stats.last_seen) if stats is not None else None,
        },
    }


def build_inventory(
    app: App,
    activity: Activity | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The whole inventory document of ``app`` (what ``GET /v1/inventory`` returns).

    Args:
        app: the app; its orchestrator is created if it does not exist yet (the policy is
            loaded), but nothing is started.
        activity: the app's long-lived :class:`Activity`, for the ``degraded`` status and
            the recent counts. Without one, a fresh one samples once: any fallback or
            failure counted so far then shows as recent.
        now: the time stamped as ``generated_at`` (default: the current UTC time).

    Raises:
        ConfigError: the app's policy cannot be loaded.
    """
    if activity is None:
        activity = Activity(app)
    recent = activity.recent()
    approval, approval_error = policy_approval(app)
    orch = app.orchestrator
    policy = policy_summary(app, approval)
    if approval_error is not None:
        policy["approval_error"] = approval_error
    return {
        "app": {
            "name": app.name,
            "node": app.node,
            "state": orch.state,
            "bus": type(app.bus).__name__,
            "govbus_version": _version(),
            "generated_at": _iso(now or datetime.now(UTC)),
        },
        "policy": policy,
        "agents": [agent_entry(app, card, activity) for card in app.registry.cards],
        "recent": recent,
    }


def find_agent(document: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The entry of agent ``name`` in an inventory document, or None."""
    return next((a for a in document["agents"] if a["name"] == name), None)


def policy_document(app: App) -> dict[str, Any]:
    """The active policy for ``GET /v1/policy``: identity, hash and approval, each check in
    order, the shadow policy if one runs, and a plain-language account (the Markdown of
    ``govbus policy explain``)."""
    approval, approval_error = policy_approval(app)
    policy = app.policy
    doc = policy_summary(app, approval)
    doc.update(
        owner=policy.owner,
        description=policy.description,
        approval_error=approval_error,
        checks=[
            {
                "id": check.id,
                "kind": check.kind,
                "mode": check.mode,
                "summary": _kind_summary(app, check.kind),
                "description": check.description,
            }
            for check in policy.checks
        ],
        shadow=None,
        summary=explain(policy, approval, kinds=app.check_kinds),
    )
    shadow = app.orchestrator.shadow
    if shadow is not None:
        doc["shadow"] = {"name": shadow.name, "version": shadow.version, "sha256": shadow.sha256}
    return doc


def _kind_summary(app: App, kind: str) -> str:
    found = app.check_kinds.get(kind)
    return found.summary if found is not None else ""
