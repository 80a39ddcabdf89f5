"""Dispatch throughput and per-hop latency, as ratios against a raw asyncio baseline.

Usage: ``python bench/dispatch.py [--json] [-n MESSAGES] [--out FILE]``

All three figures are measured in the same run on the same machine, because absolute numbers on
shared 2-core machines are noisy; the ratios are what the goals are about. All three build the
same envelope per message (an advisor's request with an actor, a traceparent and a small
payload), so the ratios measure what the bus and governance add, not envelope construction:

* ``raw_asyncio_msgs_per_s``: one publisher, one subscriber, an ``asyncio.Queue``, a pydantic
  ``Message`` built per message (the floor any Python bus pays).
* ``bus_msgs_per_s``: ``InMemoryBus``, no policy, same message construction.
* ``governed_msgs_per_s``: the orchestrator with ``policies/default.yaml`` (every check kind,
  PII and prompt-injection scanning included) and the SQLite audit in batch mode, end to end:
  from the first publish until every message was handled and every audit record committed.
* ``governed_core_msgs_per_s``: the same with ``bench/core-policy.yaml`` (three checks, no
  content scanning): what the runtime itself costs, comparable across releases.
* ``governed_core_traced_msgs_per_s``: the core policy with OpenTelemetry tracing on (the SDK
  with a batch span processor whose exporter drops the spans): what making the spans costs.

Goals: bus >= 0.50 x raw; governed (core policy) >= 0.20 x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from govbus import Actor, App, Context, Message
from govbus.audit import verify_url
from govbus.bus import Delivery, InMemoryBus

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "default.yaml"
CORE_POLICY = ROOT / "bench" / "core-policy.yaml"
ACTOR = Actor(subject="bench", roles=("advisor",))
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


async def raw_asyncio(n: int) -> float:
    queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=1024)
    done = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        while True:
            await queue.get()
            count += 1
            if count == n:
                done.set()
                return

    consumer = asyncio.create_task(consume())
    start = time.perf_counter()
    for i in range(n):
        await queue.put(build_message(i))
    await done.wait()
    elapsed = time.perf_counter() - start
    await consumer
    return n / elapsed


async def bus_throughput(n: int) -> float:
    bus = InMemoryBus()
    done = asyncio.Event()
    count = 0

    async def handler(delivery: Delivery) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    await bus.start()
    await bus.subscribe(handler, recipient="sink", group="sink")
    start = time.perf_counter()
    for i in range(n):
        await bus.publish(build_message(i), address="sink")
    await done.wait()
    elapsed = time.perf_counter() - start
    await bus.close()
    return n / elapsed


def governed_app(
    audit_url: str, policy: Path = POLICY, tracer_provider: Any = None
) -> tuple[App, dict[str, Any]]:
    app = App(
        "bench",
        policy=policy,
        audit=audit_url,
        durability="batch",
        tracer_provider=tracer_provider,
    )
    state: dict[str, Any] = {"count": 0, "target": 0, "done": None, "hop": None}

    @app.agent("sink", handles="bench.event", concurrency=1)
    async def sink(msg: Message, ctx: Context) -> None:
        state["count"] += 1
        hop = state["hop"]
        if hop is not None and not hop.done():
            hop.set_result(time.perf_counter())
        if state["count"] == state["target"]:
            state["done"].set()

    return app, state


def build_message(i: int) -> Message:
    return Message(
        type="bench.event",
        sender="bench",
        actor=ACTOR,
        metadata=TRACE,
        payload={"i": i, "account": "A-1"},
    )


def traced_provider() -> Any:
    """An OpenTelemetry SDK provider as production would have it (a batch span processor),
    exporting to a sink that drops the spans: what making the spans costs, not shipping them.
    None when the SDK is not installed."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=65536))
    return provider


async def governed_throughput(
    n: int, audit_url: str, policy: Path = POLICY, tracer_provider: Any = None
) -> float:
    app, state = governed_app(audit_url, policy, tracer_provider)
    state["target"] = n
    state["done"] = asyncio.Event()
    await app.start()
    orchestrator = app.orchestrator
    start = time.perf_counter()
    for i in range(n):
        await orchestrator.dispatch(build_message(i))
    await state["done"].wait()
    await app.audit.flush()
    elapsed = time.perf_counter() - start
    await app.close()
    # Outside the timing: prove the audit is complete (a decision and a delivery per message,
    # plus start and stop) and that the chain verifies.
    report = verify_url(audit_url)
    expected = 2 * n + 2
    if not report.ok or report.records != expected:
        raise SystemExit(
            f"audit incomplete or broken: {report.records} records (expected {expected}), "
            f"ok={report.ok}, problem={report.problem}"
        )
    return n / elapsed


async def governed_latency(samples: int, audit_url: str) -> list[float]:
    """Per-hop latency at low load: dispatch until the handler runs, one message at a time."""
    app, state = governed_app(audit_url)
    state["target"] = -1
    await app.start()
    loop = asyncio.get_running_loop()
    latencies = []
    for i in range(samples):
        state["hop"] = loop.create_future()
        start = time.perf_counter()
        await app.orchestrator.dispatch(build_message(i))
        end = await state["hop"]
        latencies.append((end - start) * 1e6)
    await app.close()
    return latencies


async def bus_latency(samples: int) -> list[float]:
    bus = InMemoryBus()
    loop = asyncio.get_running_loop()
    box: dict[str, asyncio.Future[float]] = {}

    async def handler(delivery: Delivery) -> None:
        box["hop"].set_result(time.perf_counter())

    await bus.start()
    await bus.subscribe(handler, recipient="sink", group="sink")
    latencies = []
    for i in range(samples):
        box["hop"] = loop.create_future()
        start = time.perf_counter()
        await bus.publish(build_message(i), address="sink")
        latencies.append((await box["hop"] - start) * 1e6)
    await bus.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def run(n: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        raw, bus, governed, core, traced = [], [], [], [], []
        provider = traced_provider()
        # Interleave the three measurements so machine noise hits them alike; report the best
        # round of each (the least disturbed), as timeit does.
        for r in range(rounds):
            gc.collect()
            raw.append(await raw_asyncio(n))
            bus.append(await bus_throughput(n))
            governed.append(await governed_throughput(n, f"sqlite:///{tmp}/audit-{r}.db"))
            core.append(await governed_throughput(n, f"sqlite:///{tmp}/core-{r}.db", CORE_POLICY))
            if provider is not None:
                traced.append(
                    await governed_throughput(
                        n, f"sqlite:///{tmp}/traced-{r}.db", CORE_POLICY, provider
                    )
                )
        hop = await governed_latency(2000, f"sqlite:///{tmp}/latency.db")
        bus_hop = await bus_latency(2000)
    best_raw, best_bus, best_gov = max(raw), max(bus), max(governed)
    return {
        "messages": n,
        "rounds": rounds,
        "raw_asyncio_msgs_per_s": round(best_raw),
        "bus_msgs_per_s": round(best_bus),
        "governed_msgs_per_s": round(best_gov),
        "bus_ratio": round(best_bus / best_raw, 3),
        "governed_ratio": round(best_gov / best_raw, 3),
        "governed_core_msgs_per_s": round(max(core)),
        "governed_core_ratio": round(max(core) / best_raw, 3),
        # The core policy again with every span made (SDK, batch processor, spans dropped).
        "governed_core_traced_msgs_per_s": round(max(traced)) if traced else None,
        "governed_core_traced_ratio": round(max(traced) / best_raw, 3) if traced else None,
        "goal_bus_ratio": 0.5,
        "goal_governed_core_ratio": 0.2,
        "hop_latency_us_p50": percentile(hop, 0.50),
        "hop_latency_us_p99": percentile(hop, 0.99),
        "bus_hop_latency_us_p50": percentile(bus_hop, 0.50),
        "bus_hop_latency_us_p99": percentile(bus_hop, 0.99),
        "governed_rounds_msgs_per_s": [round(x) for x in governed],
        "governed_audit_verified": True,  # every round: 2 records per message, chain verified
        "python": platform.python_version(),
        "median_raw_msgs_per_s": round(statistics.median(raw)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("-n", type=int, default=30_000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.n, args.rounds))
    line = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    if args.json:
        print(line)
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
