"""Audit writer throughput (events/s) and verify speed (records/s), SQLite and PostgreSQL.

Usage: ``python bench/audit.py [--json] [-n EVENTS] [--rounds R] [--verify-records N]
[--pg-url URL | --no-pg] [--out FILE]``

Events look like the orchestrator's: every other one a ``decision`` with the check outcomes of a
15-check policy and the envelope's header (about 1.4 KB stored, as the example app writes), the
others a small ``delivery``; message and correlation ids are UUIDv7 as in production.

* ``<store>_<writer>_batch_events_per_s``: ``durability: batch``. One producer submits ``n``
  events as fast as the store takes them (backing off while ``max_queue`` is full, as a busy
  event loop would see it), then flushes; from the first submit until everything is committed.
* ``<store>_<writer>_sync_events_per_s``: ``durability: sync``. ``--concurrency`` tasks each
  ``await store.write(event)`` in a loop (group commit: concurrent writes share a commit);
  ``n // 4`` events in all.
* ``<writer>`` is ``thread`` (sealing and inserts in a thread of the event loop's process) or
  ``process`` (in a child interpreter).
* ``<store>_verify_records_per_s``: ``verify_url`` over a store of ``--verify-records`` records
  (SQLite: a fresh file of four interleaved chains made by a direct generator that seals real
  chains, as fast as it can insert them; PostgreSQL: the chain the thread/batch run wrote).
  On SQLite with the default workers (one per core, for stores of 200,000 records or more),
  and ``sqlite_verify_serial_records_per_s`` in one process (``workers=1``).

Every figure is the best of ``--rounds`` (the least disturbed run, as timeit reports) and every
written store is verified afterwards (outside the timing). PostgreSQL uses the test database
(``--pg-url``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) with a unique node
per run and deletes its rows afterwards; when it is unreachable its figures are skipped with the
reason. The machine's load average is reported: on a shared machine absolute numbers move with
it.

Goals: ``sqlite_thread_batch_events_per_s`` >= 50,000; ``sqlite_verify_s`` <= 10 for
``--verify-records 1000000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from govbus.audit import SqlAuditStore, verify_url
from govbus.audit.base import GENESIS_HASH, AuditEvent
from govbus.audit.chain import RECORD_COLUMNS, chain_row
from govbus.audit.database import make_engine, migrate, normalize_url
from govbus.envelope import new_id

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_SQLITE_BATCH = 50_000
CHECKS = (
    "advice-is-explained", "advice-rate", "advisors-only", "channels", "clearance",
    "eu-residency", "high-risk-needs-advisor", "injection", "personal-data", "public-notes",
    "purpose-limitation", "request-shape", "size", "tenants", "trace-required",
)  # fmt: skip
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PAYLOAD_SHA256 = "614eb6375210ea066b325da5908cfbc182e4fe549605f2ec1deb4b038a14e8c0"


def make_events(n: int, start: datetime = T0) -> list[AuditEvent]:
    """``n`` events shaped like the example app's: decisions and deliveries, alternating."""
    events = []
    for i in range(n):
        mid, ts = new_id(), start + timedelta(microseconds=137 * i)
        if i % 2 == 0:
            data: dict[str, Any] = {
                "checks": dict.fromkeys(CHECKS, "allow"),
                "classification": "internal",
                "envelope": {
                    "actor": {"roles": ["advisor"], "subject": "asha.rao", "tenant": "retail-eu"},
                    "causation_id": None,
                    "created_at": ts.isoformat(),
                    "deadline": (ts + timedelta(seconds=10)).isoformat(),
                    "metadata": {
                        "reply_to": "_inbox.retail-advisory-386-da3c8778",
                        "traceparent": "00-f25c43081e83b48898929d5c185a4425-72b72dd18fc17d46-01",
                    },
                    "to": None,
                },
                "payload_sha256": PAYLOAD_SHA256,
                "payload_storage": "hash",
                "policy": "retail-banking",
                "policy_version": "2026.11.1",
            }
            kind, outcome = "decision", "allow"
        else:
            data = {"duration_ms": round(0.1 + i % 97 / 10, 2), "attempt": 1}
            kind, outcome = "delivery", "ok"
        events.append(
            AuditEvent(
                kind=kind,
                ts=ts,
                outcome=outcome,
                message_id=mid,
                correlation_id=mid,
                msg_type="advisory.request",
                sender="advisor-portal",
                recipient="intake",
                policy_sha256="7bde4a0359df3ff3ec5114759fc94d89bf7a6b8154182c3d904857be17c5a222",
                data=data,
            )
        )
    return events


async def batch_throughput(url: str, node: str, writer: str, events: list[AuditEvent]) -> float:
    store = SqlAuditStore(url, node=node, writer=writer)  # type: ignore[arg-type]
    await store.start()
    room = 100_000 - 1_000  # max_queue, less a batch: back off before submit would refuse
    start = time.perf_counter()
    for event in events:
        while store.pending >= room:  # noqa: ASYNC110 - polling is the backpressure here
            await asyncio.sleep(0.0005)
        store.submit(event)
    await store.flush()
    elapsed = time.perf_counter() - start
    await store.close()
    return len(events) / elapsed


async def sync_throughput(
    url: str, node: str, writer: str, events: list[AuditEvent], concurrency: int
) -> float:
    store = SqlAuditStore(url, node=node, writer=writer)  # type: ignore[arg-type]
    await store.start()
    it = iter(events)

    async def worker() -> None:
        for event in it:
            await store.write(event)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await store.close()
    return len(events) / elapsed


def check(url: str, node: str, expected: int) -> None:
    """Outside the timing: the chain is complete and verifies."""
    report = verify_url(url, node=node)
    if not report.ok or report.records != expected:
        raise SystemExit(
            f"audit chain {node!r} incomplete or broken: {report.records} records (expected "
            f"{expected}), problem={report.problem}"
        )


def generate(path: Path, records: int, chains: int = 4, batch: int = 250) -> None:
    """A SQLite audit database of ``records`` real, valid records in ``chains`` interleaved
    chains, sealed with the store's own code and inserted directly (no writer, no queue)."""
    url = normalize_url(str(path))
    engine = make_engine(url)
    migrate(engine, str(path))
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    columns = ", ".join(RECORD_COLUMNS)
    insert = f"INSERT INTO audit_records ({columns}) VALUES ({', '.join('?' * 14)})"
    heads = {f"gen-{c}": (0, GENESIS_HASH) for c in range(chains)}
    events = make_events(batch)
    done = 0
    while done < records:
        for node, (seq, prev) in heads.items():
            rows = []
            for event in events[: min(batch, records - done)]:
                seq += 1
                row = chain_row(node, seq, prev, event)
                prev = row["hash"]
                rows.append(tuple(row[name] for name in RECORD_COLUMNS))
            con.executemany(insert, rows)
            heads[node] = (seq, prev)
            done += len(rows)
            if done >= records:
                break
    con.executemany(
        "INSERT INTO audit_heads (node, seq, hash) VALUES (?, ?, ?)",
        [(node, seq, digest) for node, (seq, digest) in heads.items() if seq],
    )
    con.commit()
    con.close()


def verify_speed(
    url: str, rounds: int, node: str | None = None, workers: int | None = None
) -> tuple[float, int]:
    best, records = 0.0, 0
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        report = verify_url(url, node=node, workers=workers)
        elapsed = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"verify failed on the benchmark store: {report.problem}")
        records = report.records
        best = max(best, records / elapsed)
    return best, records


def pg_reachable(url: str) -> str | None:
    """None when PostgreSQL answers at ``url``, else why not."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as exc:  # any reason: report it and skip
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        engine.dispose()


@contextlib.contextmanager
def pg_nodes(url: str) -> Iterator[list[str]]:
    """Collects the nodes a run writes to the shared database and deletes their rows after."""
    nodes: list[str] = []
    try:
        yield nodes
    finally:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                for node in nodes:
                    for table in ("audit_records", "audit_heads"):
                        conn.execute(sa.text(f"DELETE FROM {table} WHERE node = :n"), {"n": node})
        finally:
            engine.dispose()


async def writer_figures(
    prefix: str, url_for: Any, n: int, rounds: int, concurrency: int, nodes: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    events = make_events(n)
    sync_events = events[: max(concurrency, n // 4)]
    for writer in ("thread", "process"):
        batch, sync = [], []
        for r in range(rounds):
            gc.collect()
            node = f"bench-{uuid.uuid4().hex[:10]}"
            nodes.append(node)
            url = url_for(f"{writer}-batch-{r}")
            batch.append(await batch_throughput(url, node, writer, events))
            check(url, node, len(events))
            node = f"bench-{uuid.uuid4().hex[:10]}"
            nodes.append(node)
            url = url_for(f"{writer}-sync-{r}")
            sync.append(await sync_throughput(url, node, writer, sync_events, concurrency))
            check(url, node, len(sync_events))
        out[f"{prefix}_{writer}_batch_events_per_s"] = round(max(batch))
        out[f"{prefix}_{writer}_sync_events_per_s"] = round(max(sync))
        out[f"{prefix}_{writer}_batch_rounds"] = [round(x) for x in batch]
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "events": args.n,
        "sync_events": max(args.concurrency, args.n // 4),
        "sync_concurrency": args.concurrency,
        "rounds": args.rounds,
        "goal_sqlite_batch_events_per_s": GOAL_SQLITE_BATCH,
    }
    with tempfile.TemporaryDirectory() as tmp:
        result.update(
            await writer_figures(
                "sqlite", lambda tag: f"sqlite:///{tmp}/{tag}.db", args.n, args.rounds,
                args.concurrency, [],
            )
        )  # fmt: skip
        generated = Path(tmp) / "verify.db"
        start = time.perf_counter()
        generate(generated, args.verify_records)
        result["sqlite_verify_generate_s"] = round(time.perf_counter() - start, 2)
        speed, records = verify_speed(str(generated), args.rounds)
        result["sqlite_verify_records"] = records
        result["sqlite_verify_records_per_s"] = round(speed)
        result["sqlite_verify_s"] = round(records / speed, 2)
        serial, _ = verify_speed(str(generated), args.rounds, workers=1)
        result["sqlite_verify_serial_records_per_s"] = round(serial)
        result["sqlite_verify_serial_s"] = round(records / serial, 2)
    result["goal_sqlite_batch_met"] = (
        result["sqlite_thread_batch_events_per_s"] >= GOAL_SQLITE_BATCH
    )
    skipped = "--no-pg" if args.no_pg else pg_reachable(args.pg_url)
    if skipped is not None:
        result["postgresql_skipped"] = skipped
    else:
        with pg_nodes(args.pg_url) as nodes:
            result.update(
                await writer_figures(
                    "postgresql", lambda _tag: args.pg_url, args.n, args.rounds,
                    args.concurrency, nodes,
                )
            )  # fmt: skip
            # The thread/batch chains of this run: verify one of them (only it: the shared
            # database holds other people's chains).
            speed, records = verify_speed(args.pg_url, args.rounds, node=nodes[0])
            result["postgresql_verify_records"] = records
            result["postgresql_verify_records_per_s"] = round(speed)
    result["python"] = platform.python_version()
    result["cpus"] = os.cpu_count()
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("-n", type=int, default=50_000, help="events per batch-mode round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=64, help="concurrent write() callers in sync mode"
    )
    parser.add_argument(
        "--verify-records", type=int, default=200_000, help="records in the SQLite verify store"
    )
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL URL (default {PG_URL})")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    line = json.dumps(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    if args.json:
        print(line)
    else:
        for key, value in result.items():
            print(f"{key:>36}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
