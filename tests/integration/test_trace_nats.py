"""A request that crosses three processes (client, intake worker, quoter worker) over NATS is
one trace: each process exports its spans with the OpenTelemetry SDK's in-memory exporter, and
the spans share one trace id and link parent to child across the process boundaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from govbus import Message
from govbus.testing import SpanCapture
from tests.apps.traced import create_app
from tests.integration.workers import start_worker, stop_workers
from tests.nats_server import nats_server_or_skip

pytestmark = [pytest.mark.nats]

APP = "tests.apps.traced:create_app"


async def test_a_request_across_three_processes_is_one_trace(tmp_path: Path) -> None:
    server = nats_server_or_skip(tmp_path)
    env = {"GOVBUS_SPANS_DIR": str(tmp_path)}
    client_spans = SpanCapture()
    client = create_app(bus=server.url, spans=client_spans)
    workers = []
    try:
        workers.append(await start_worker(APP, server.url, ["intake"], env=env))
        workers.append(await start_worker(APP, server.url, ["quoter"], env=env))
        await client.start(agents=[])
        reply = await client.request(
            Message(type="quote.ask", sender="web", payload={"symbol": "ACME"}), timeout=20
        )
    finally:
        await client.close()
        await stop_workers(workers)
        server.close()
    assert reply.type == "quote.answer", reply.payload
    intake_pid = reply.payload["by"]
    quoter_pid = reply.payload["quote"]["by"]
    assert len({intake_pid, quoter_pid, *(w.pid for w in workers)}) == 2  # two workers
    dumps = {int(p.stem): json.loads(p.read_text()) for p in tmp_path.glob("*.json")}  # noqa: ASYNC240
    assert set(dumps) == {intake_pid, quoter_pid}, "each worker wrote its spans"
    spans: list[dict[str, Any]] = client_spans.records() + dumps[intake_pid] + dumps[quoter_pid]

    # One trace id, in all three processes.
    (trace,) = client_spans.trace_ids()
    for records in (dumps[intake_pid], dumps[quoter_pid]):
        assert records and {s["trace_id"] for s in records} == {trace}

    # The parent links cross the process boundaries: walk up from the quoter's handler.
    by_id = {s["span_id"]: s for s in spans}
    (leaf,) = [s for s in dumps[quoter_pid] if s["name"] == "handle quoter"]
    path, node = [], leaf
    while node is not None:
        path.append(node["name"])
        node = by_id.get(node["parent_id"]) if node["parent_id"] else None
    assert path == [
        "handle quoter", "process quoter",        # quoter worker
        "publish quote.get", "handle intake", "process intake",  # intake worker
        "publish quote.ask", "request quote.ask",  # client
    ]  # fmt: skip
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["request quote.ask"]
    assert all(s["parent_id"] in by_id for s in spans if s["parent_id"] is not None)
