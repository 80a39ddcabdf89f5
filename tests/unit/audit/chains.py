"""Helpers for audit tests: real chains in a SQLite file, written by the store's own writer core,
and tampering with plain sqlite3 (as an attacker with file access would)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from govbus.audit.base import AuditEvent
from govbus.audit.database import normalize_url
from govbus.audit.writer import ChainWriter

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def event(i: int, *, ts: datetime | None = None, **fields: Any) -> AuditEvent:
    """Event ``i``: one hour after event ``i - 1`` unless ``ts`` says otherwise."""
    values: dict[str, Any] = {
        "kind": "decision" if i % 2 == 0 else "delivery",
        "outcome": "allow" if i % 2 == 0 else "ok",
        "message_id": f"m-{i}",
        "correlation_id": f"c-{i // 4}",
        "msg_type": "advice.request" if i % 3 else "chat.message",
        "sender": "planner" if i % 2 == 0 else "intake",
        "recipient": "advisor",
        "policy_sha256": "ab" * 32,
        "data": {"i": i, "note": 'é ☃ "quoted"\nnext'},
    }
    values.update(fields)
    return AuditEvent(ts=ts if ts is not None else T0 + i * HOUR, **values)


def write_chain(db: Path, node: str, events: Sequence[AuditEvent] | int, batch: int = 50) -> int:
    """Append ``events`` (or events 0..n-1) to chain ``node`` of the SQLite file ``db`` with the
    writer core (seal, insert, move the head); return the chain's last seq."""
    items = [event(i) for i in range(events)] if isinstance(events, int) else list(events)
    writer = ChainWriter(normalize_url(str(db)), node, write_timeout=5.0, abort=threading.Event())
    writer.open()
    try:
        for start in range(0, len(items), batch):
            assert writer.commit(items[start : start + batch])
        return writer.seq
    finally:
        writer.dispose()


def sql(db: Path, *statements: str, params: Sequence[Any] | dict[str, Any] = ()) -> None:
    con = sqlite3.connect(db)
    with con:
        for statement in statements:
            con.execute(statement, params)
    con.close()


def query(db: Path, statement: str, params: Sequence[Any] = ()) -> list[Any]:
    con = sqlite3.connect(db)
    try:
        return con.execute(statement, params).fetchall()
    finally:
        con.close()


def seqs(db: Path, node: str) -> list[int]:
    rows = query(db, "SELECT seq FROM audit_records WHERE node = ? ORDER BY seq", (node,))
    return [row[0] for row in rows]
