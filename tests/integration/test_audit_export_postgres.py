"""Export, export verification and tail on PostgreSQL (streamed through a server-side cursor).

The whole-store export and its verification read every chain, so these tests use a database of
their own on the test server (created and dropped here), never the shared one.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govbus.audit import SqlAuditStore, verify_url
from govbus.audit.base import AuditEvent
from govbus.audit.export import ExportFilter, export_url, verify_export
from govbus.audit.prune import prune_url
from govbus.audit.tail import AuditTail
from govbus.cli import main

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def url(fresh_url: str) -> str:
    """A new database on the test server holding chains 'a' (30 records) and 'b' (5)."""
    write(fresh_url, "a", 30)
    write(fresh_url, "b", 5)
    return fresh_url


def event(i: int) -> AuditEvent:
    return AuditEvent(
        kind="decision" if i % 2 == 0 else "delivery",
        ts=T0 + timedelta(minutes=i),
        outcome="allow",
        message_id=f"m-{i}",
        msg_type="Advice.request" if i % 3 == 0 else "advice.request",
        sender="planner" if i % 2 == 0 else "",
        recipient="advisor",
        data={"i": i, "text": 'é ☃ "q"\n'},
    )


def write(url: str, node: str, n: int, start: int = 0) -> None:
    import asyncio

    async def go() -> None:
        store = SqlAuditStore(url, node=node, page_size=7)
        await store.start()
        for i in range(start, start + n):
            store.submit(event(i))
        await store.close()

    asyncio.run(go())


def export(url: str, fmt: str = "jsonl", **filters: object) -> bytes:
    out = io.BytesIO()
    export_url(url, out, format=fmt, filters=ExportFilter(**filters))  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_from_postgresql_verifies(url: str, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"audit.{fmt}"
    path.write_bytes(export(url, fmt))
    checked = verify_export(path)
    assert checked.report.ok, checked.report.problem
    assert checked.report.chains == {"a": 30, "b": 5}
    assert checked.complete is (fmt == "jsonl")


def test_filters_run_in_postgresql_and_the_glob_is_case_sensitive(url: str) -> None:
    def selected(**filters: object) -> list[tuple[str, int]]:
        records = [json.loads(line) for line in export(url, **filters).splitlines()[1:]]
        return [(r["node"], r["seq"]) for r in records]

    assert selected(msg_type="Advice.*", until=T0 + timedelta(minutes=7)) == [
        ("a", 1), ("a", 4), ("a", 7), ("b", 1), ("b", 4),
    ]  # fmt: skip
    assert selected(agent="planner", kind="decision", since=T0 + timedelta(minutes=26)) == [
        ("a", 27),
        ("a", 29),
    ]


def test_an_export_after_a_prune_verifies_and_a_forged_checkpoint_does_not(
    url: str, tmp_path: Path
) -> None:
    prune_url(url, before=T0 + timedelta(minutes=10), node="admin", now=T0 + timedelta(days=9))
    assert verify_url(url).ok
    data = export(url)
    manifest = json.loads(data.splitlines()[0])
    assert manifest["checkpoints"]["a"]["seq"] == 10
    path = tmp_path / "pruned.jsonl"
    path.write_bytes(data)
    assert verify_export(path).report.ok
    path.write_bytes(data.replace(manifest["checkpoints"]["a"]["hash"].encode(), b"0" * 64, 1))
    assert not verify_export(path).report.ok


def test_the_cli_exports_atomically_and_verifies(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", url, "--out", str(out), "--no-progress"]) == 0
    assert "exported 35 records from 2 chains" in capsys.readouterr().err
    assert main(["audit", "verify", "--export", str(out)]) == 0
    assert "verified: 35 records" in capsys.readouterr().out


def test_tail_reads_the_newest_then_follows(url: str) -> None:
    reader = AuditTail(url)
    try:
        newest = reader.last(3)
        assert [(r[0], r[1]) for r in newest] == [("a", 28), ("a", 29), ("a", 30)]
        write(url, "b", 2, start=100)
        assert [(r[0], r[1]) for r in reader.poll()] == [("b", 6), ("b", 7)]
        assert reader.poll() == []
    finally:
        reader.close()
