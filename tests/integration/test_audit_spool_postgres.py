"""Chaos: the PostgreSQL connection drops in the middle of a run. Records spool to a local
file, catch up when the database is back, and `govbus audit verify` passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from govbus.audit import SqlAuditStore, count_url, verify_url
from tests.tcp_proxy import TcpProxy

from .conftest import POSTGRES_URL as URL
from .test_sql_store_postgres import event

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy_url(engine: sa.Engine) -> Iterator[tuple[TcpProxy, str, str]]:
    target = sa.engine.make_url(URL)
    node = f"pytest-spool-{uuid.uuid4().hex[:10]}"
    with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        url = target.set(port=proxy.port, query={"connect_timeout": "2"})
        yield proxy, url.render_as_string(hide_password=False), node
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_records WHERE node = :n"), {"n": node})
        conn.execute(sa.text("DELETE FROM audit_heads WHERE node = :n"), {"n": node})


@pytest.mark.parametrize("writer", ["thread", "process"])
async def test_a_dropped_connection_spools_and_catches_up(
    proxy_url: tuple[TcpProxy, str, str], tmp_path: Path, writer: str
) -> None:
    proxy, url, node = proxy_url
    spool = tmp_path / "audit.spool"
    store = SqlAuditStore(url, node=node, writer=writer, write_timeout=1.0,  # type: ignore[arg-type]
                          flush_interval=0.01, spool=spool)  # fmt: skip
    await store.start()
    n = 0
    try:
        for _ in range(3):  # before
            for _ in range(50):
                store.submit(event(n))
                n += 1
            await store.flush()
        proxy.cut()  # the database goes away mid-run
        for _ in range(4):
            for _ in range(50):
                store.submit(event(n))
                n += 1
            await store.flush()  # returns once the batch is safe in the spool
        assert spool.exists() and spool.stat().st_size > 0
        proxy.restore()
        await asyncio.sleep(0.2)
        for _ in range(2):  # after: the spool goes in first, then these
            for _ in range(50):
                store.submit(event(n))
                n += 1
            await store.flush()
        assert not spool.exists()
    finally:
        if not proxy.listening:
            proxy.restore()
        await store.close()
    assert count_url(URL, node=node) == n == 450
    report = verify_url(URL)
    assert report.ok, report.problem
