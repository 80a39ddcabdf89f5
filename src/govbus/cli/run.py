"""``govbus run``: the example advisory pipeline, end to end, on embedded defaults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table

from govbus.audit import verify_url
from govbus.cli.audit import print_report, report_json
from govbus.cli.telemetry import setup_telemetry
from govbus.envelope import FALLBACK_CAUSE, FALLBACK_OF, Message
from govbus.errors import ConfigError
from govbus.examples.finance import SCENARIO, create_app
from govbus.orchestrator import App, outcome
from govbus.orchestrator.core import PARTIAL

_STYLE = {
    "ok": "green",
    "denied": "red",
    "degraded": "yellow",
    "partial": "yellow",
    "failed": "red",
}


@dataclass(frozen=True)
class StepResult:
    label: str
    outcome: str
    expected: str
    detail: str
    latency_ms: float

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expected


@contextlib.asynccontextmanager
async def spawn_workers(
    count: int,
    *,
    bus: str,
    audit: str,
    policy: str | None,
    trace: str | None = None,
    ready_timeout: float = 60.0,
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start ``count`` ``govbus worker`` processes running every agent of the example app
    (competing consumers), wait until each is attached, and stop them (SIGTERM: they drain)
    on exit."""
    procs: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(count):
            cmd = [sys.executable, "-m", "govbus", "worker", "--bus", bus, "--audit", audit]
            if trace is not None:
                cmd += ["--trace", trace]
            if policy is not None:
                cmd += ["--policy", policy]
            proc = await asyncio.create_subprocess_exec(*cmd, stderr=asyncio.subprocess.PIPE)
            procs.append(proc)
            await _until_ready(proc, ready_timeout)
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_ready(proc: asyncio.subprocess.Process, timeout: float) -> None:
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = (await proc.stderr.readline()).decode(errors="replace")
                if not line:
                    raise ConfigError(
                        f"a worker process exited before it was ready: {''.join(seen[-5:])}"
                    )
                seen.append(line)
                if " agents " in line:
                    break
    except TimeoutError:
        proc.kill()
        raise ConfigError(f"a worker process was not ready within {timeout:.0f}s") from None
    # Keep draining its stderr so the worker never blocks on a full pipe.
    task = asyncio.get_running_loop().create_task(_drain(proc))
    _PUMPS.add(task)
    task.add_done_callback(_PUMPS.discard)


_PUMPS: set[asyncio.Task[None]] = set()


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():
        pass


def describe(reply: Message, app: App) -> tuple[str, str]:
    """(outcome, detail) of a reply, for people; a degraded reply without a fallback (a part
    missing) is shown as ``partial``."""
    ended = outcome(reply)
    if ended == "denied":
        return "denied", f"{reply.payload.get('check')} ({reply.payload.get('code')})"
    if ended == "failed":
        return "failed", f"{reply.payload.get('agent')} ({reply.payload.get('code')})"
    if ended == "degraded":
        replaced = reply.metadata.get(FALLBACK_OF)
        if replaced is not None:
            card = app.registry.card(replaced)
            fallback = card.fallback if card is not None else "?"
            cause = reply.metadata.get(FALLBACK_CAUSE, "?")
            return "degraded", f"{replaced} {cause} -> {fallback}"
        agent, _, code = reply.metadata.get(PARTIAL, "?:?").partition(":")
        return "partial", f"{agent} {code}, no fallback"
    return "ok", f"answered by {reply.sender}"


async def run_demo(
    *,
    bus: str = "memory://",
    audit: str = "sqlite:///.govbus/audit.db",
    policy: str | None = None,
    output: str = "table",
    quiet: bool = False,
    strict: bool = False,
    workers: int = 2,
    trace: str | None = None,
    log_format: str | None = None,
    log_level: str = "info",
) -> int:
    console = Console()
    telemetry = setup_telemetry(
        trace, log_format=log_format, log_level=log_level, service="govbus-run"
    )
    app = create_app(policy=policy, bus=bus, audit=audit, strict=strict)
    telemetry.install(app)
    try:
        return await _run(app, console, bus=bus, audit=audit, policy=policy, output=output,
                          quiet=quiet, workers=workers, trace=trace)  # fmt: skip
    finally:
        telemetry.shutdown()


async def _run(
    app: App,
    console: Console,
    *,
    bus: str,
    audit: str,
    policy: str | None,
    output: str,
    quiet: bool,
    workers: int,
    trace: str | None,
) -> int:
    started = time.perf_counter()
    results: list[StepResult] = []
    distributed = bus.startswith("nats:")
    async with contextlib.AsyncExitStack() as stack:
        if distributed:
            # The agents run in worker processes (started here unless --workers 0: then
            # workers already running on the bus take the work); this process only sends.
            await stack.enter_async_context(spawn_workers(workers, bus=bus, audit=audit,
                                                          policy=policy, trace=trace))  # fmt: skip
            await app.start(agents=[])
        stack.push_async_callback(app.close)
        await app.start()
        if output == "table" and not quiet:
            p = app.policy
            console.print(
                f"[bold]govbus run[/bold]: {len(app.registry)} agents, policy "
                f"[cyan]{p.name}[/cyan] {p.version} (sha256 {p.sha256[:12]}...), bus {bus}, "
                f"audit {audit}"
            )
        for step in SCENARIO:
            t0 = time.perf_counter()
            reply = await app.request(step.message, timeout=10.0)
            latency = (time.perf_counter() - t0) * 1000
            outcome, detail = describe(reply, app)
            results.append(StepResult(step.label, outcome, step.expect, detail, round(latency, 1)))
        counters = dict(app.orchestrator.counters)
    elapsed = time.perf_counter() - started
    report = verify_url(audit) if audit not in ("memory://", "memory") else None
    ok = all(r.as_expected for r in results) and (report is None or report.ok)

    if output == "json":
        print(
            json.dumps(
                {
                    "ok": ok,
                    "steps": [asdict(r) | {"as_expected": r.as_expected} for r in results],
                    "counters": counters,
                    "audit": report_json(report) if report else None,
                    "seconds": round(elapsed, 3),
                }
            )
        )
        return 0 if ok else 1

    if not quiet:
        table = Table(title="requests", title_justify="left")
        table.add_column("request")
        table.add_column("outcome")
        table.add_column("check / fallback")
        table.add_column("ms", justify="right")
        for r in results:
            mark = "" if r.as_expected else f" [red](expected {r.expected})[/red]"
            style = _STYLE.get(r.outcome, "white")
            table.add_row(
                r.label, f"[{style}]{r.outcome}[/{style}]{mark}", r.detail, f"{r.latency_ms:.0f}"
            )
        console.print(table)
        if report is not None:
            print_report(console, audit, report)
    console.print(
        f"summary: {len(results)} requests, {counters.get('dispatched', 0)} messages governed, "
        f"{counters.get('allowed', 0)} allowed, {counters.get('denied', 0)} denied, "
        f"fallbacks {counters.get('fallbacks', 0)}, failures {counters.get('failed', 0)}, "
        f"audit {'verified' if report is None or report.ok else 'BROKEN'}, "
        f"{elapsed:.2f}s -> {'[green]OK[/green]' if ok else '[red]FAILED[/red]'}"
    )
    return 0 if ok else 1
