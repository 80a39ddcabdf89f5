"""Governed throughput over ``NatsBus`` against raw nats-py JetStream, same run, same server.

Usage: ``python bench/nats.py [--json] [-n MESSAGES] [--url nats://HOST:PORT] [--out FILE]``

* ``raw_msgs_per_s``: nats-py alone: one task publishes ``n`` messages to a stream (each publish
  awaits the stream's acknowledgement, a window of 256 in flight), another pull-consumes them
  from a durable consumer in batches and acks each one; from the first publish until the last
  ack. The message body is the same envelope JSON the governed run sends.
* ``governed_msgs_per_s``: the orchestrator over ``NatsBus`` with ``bench/core-policy.yaml``
  and an in-memory audit: the client dispatches ``n`` messages (256 in flight), one agent
  handles them (acknowledged after the handler, idempotency claims in the key-value bucket);
  from the first dispatch until the agent has handled the last.

Goal: governed >= 0.50 x raw. Every run uses fresh stream and bucket names, so the shared
server's other streams are untouched.

``raw_gc_ms`` / ``governed_gc_ms``: time the garbage collector took during the best round of
each (the process is CPU-bound, so this is time the bus and the orchestrator did not get).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# nats-py package it measures: drop the folder before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import nats  # noqa: E402
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig  # noqa: E402

from govbus import Actor, App, Context, Message  # noqa: E402
from govbus.bus.nats import NatsBus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORE_POLICY = ROOT / "bench" / "core-policy.yaml"
ACTOR = Actor(subject="bench", roles=("advisor",))
WINDOW = 256


class GcClock:
    """Seconds spent in garbage collection since :meth:`reset` (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._began = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._began

    def reset(self) -> None:
        gc.collect()  # each round starts from the same heap, not with the last one's garbage
        self.total = 0.0


GC = GcClock()


def envelope(i: int) -> Message:
    return Message(
        type="bench.item",
        sender="bench",
        actor=ACTOR,
        payload={"n": i, "account": "A-100"},
        metadata={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    )


async def raw(url: str, n: int) -> tuple[float, float]:
    tag = secrets.token_hex(4)
    stream, subject = f"RAW_{tag}", f"raw_{tag}.items"
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    await js.add_consumer(
        stream, ConsumerConfig(durable_name="sink", ack_policy=AckPolicy.EXPLICIT)
    )
    bodies = [envelope(i).to_json() for i in range(n)]
    received = 0
    done = asyncio.Event()

    async def consume() -> None:
        nonlocal received
        sub = await js.pull_subscribe(subject, durable="sink", stream=stream)
        while received < n:
            try:
                batch = await sub.fetch(min(WINDOW, n - received), timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in batch:
                Message.from_json(msg.data)  # parse, as any consumer must
                await msg.ack()
                received += 1
        done.set()

    async def publish() -> None:
        gate = asyncio.Semaphore(WINDOW)

        async def one(body: bytes) -> None:
            async with gate:
                await js.publish(subject, body)

        await asyncio.gather(*(one(b) for b in bodies))

    GC.reset()
    started = time.perf_counter()
    consumer = asyncio.create_task(consume())
    await publish()
    await done.wait()
    elapsed = time.perf_counter() - started
    in_gc = GC.total
    await consumer
    await js.delete_stream(stream)
    await nc.close()
    return n / elapsed, in_gc


async def governed(url: str, n: int) -> tuple[float, float]:
    tag = secrets.token_hex(4)
    bus = NatsBus(url, stream=f"BENCH_{tag}", subject_prefix=f"bench_{tag}")
    app = App("bench", bus=bus, audit="memory://", policy=CORE_POLICY)
    app.idempotency = None  # the default on NATS: claims in the key-value bucket
    handled = 0
    done = asyncio.Event()

    @app.agent("sink", handles="bench.item", concurrency=WINDOW)
    async def sink(msg: Message, ctx: Context) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    messages = [envelope(i) for i in range(n)]
    async with app:
        gate = asyncio.Semaphore(WINDOW)

        async def one(message: Message) -> None:
            async with gate:
                await app.publish(message)

        GC.reset()
        started = time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        await done.wait()
        elapsed = time.perf_counter() - started
        in_gc = GC.total
    nc = await nats.connect(url)  # leave the shared server as it was
    for name in (f"BENCH_{tag}", f"BENCH_{tag}_DLQ"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
    await nc.close()
    return n / elapsed, in_gc


async def run(url: str, n: int, rounds: int) -> dict[str, Any]:
    raws, governeds = [], []
    for _ in range(rounds):  # interleaved, so drift on a noisy machine hits both alike
        raws.append(await raw(url, n))
        governeds.append(await governed(url, n))
    (best_raw, raw_gc), (best_governed, governed_gc) = max(raws), max(governeds)
    return {
        "benchmark": "nats",
        "messages": n,
        "rounds": rounds,
        "url": url,
        "raw_msgs_per_s": round(best_raw),
        "governed_msgs_per_s": round(best_governed),
        "governed_ratio": round(best_governed / best_raw, 3),
        "goal_governed_ratio": 0.5,
        "raw_gc_ms": round(raw_gc * 1000),
        "governed_gc_ms": round(governed_gc * 1000),
        "raw_rounds": [round(rate) for rate, _ in raws],
        "governed_rounds": [round(rate) for rate, _ in governeds],
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("-n", type=int, default=5000, help="messages per round (5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best counts (3)")
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="the NATS server")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.url, args.n, args.rounds))
    text = json.dumps(result)
    if args.out is not None:
        args.out.write_text(text + "\n")
    if args.json:
        print(text)
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
