"""``govbus worker``: run some agents of an app in their own process on a distributed bus.

The app is named ``MODULE:FACTORY`` (the same contract as drills: the factory takes ``bus=``
and ``audit=`` keyword arguments and returns a :class:`govbus.App`). The worker attaches only
the agents asked for; every process that runs the same agent shares its work (competing
consumers). SIGTERM or SIGINT drains: no new deliveries are taken, in-flight handlers finish
and are acknowledged, the audit writer is flushed, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from govbus.cli.telemetry import setup_telemetry
from govbus.errors import ConfigError
from govbus.orchestrator import App, load_app

DEFAULT_APP = "govbus.examples.finance:create_app"


async def run_worker(
    *,
    app_ref: str | None,
    bus: str,
    agents: Sequence[str] | None,
    audit: str,
    policy: str | None = None,
    drain_timeout: float = 30.0,
    ready: asyncio.Event | None = None,
    trace: str | None = None,
    log_format: str | None = None,
    log_level: str = "info",
) -> int:
    app_ref = app_ref or DEFAULT_APP
    extra = {"policy": policy} if policy is not None else {}
    telemetry = setup_telemetry(
        trace, log_format=log_format, log_level=log_level, service="govbus-worker"
    )
    app = load_app(app_ref, bus=bus, audit=audit, **extra)
    telemetry.install(app)
    try:
        return await _serve(app, app_ref, bus=bus, agents=agents, audit=audit,
                            drain_timeout=drain_timeout, ready=ready)  # fmt: skip
    finally:
        telemetry.shutdown()


async def _serve(
    app: App,
    app_ref: str,
    *,
    bus: str,
    agents: Sequence[str] | None,
    audit: str,
    drain_timeout: float,
    ready: asyncio.Event | None,
) -> int:
    names = list(agents) if agents else [a.card.name for a in app.registry]
    unknown = [n for n in names if n not in app.registry]
    if unknown:
        known = ", ".join(sorted(a.card.name for a in app.registry))
        raise ConfigError(f"no agent named {', '.join(unknown)} in {app_ref} (agents: {known})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start(agents=names)
    active = app.policy
    print(
        f"govbus worker {app.node}: agents {', '.join(names)} on {bus}; policy {active.name} "
        f"{active.version} ({active.sha256[:12]}...); audit {audit}",
        file=sys.stderr,
        flush=True,
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        print(f"govbus worker {app.node}: draining", file=sys.stderr, flush=True)
        await app.close(drain_timeout=drain_timeout)
        counters = dict(app.orchestrator.counters)
        print(f"govbus worker {app.node}: stopped; {counters}", file=sys.stderr, flush=True)
    return 0
