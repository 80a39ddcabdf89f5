"""Property: whatever the outages, replays and restarts, the inner store gets every event once,
in submission order, and its chain verifies."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from govbus.audit import MemoryAuditStore, SpoolingAuditStore
from govbus.audit.base import AuditEvent, AuditRecord, VerifyReport
from govbus.errors import AuditUnavailableError

SETTINGS = settings(max_examples=150, deadline=None)
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class FlakyStore:
    """A MemoryAuditStore that raises AuditUnavailableError while down (or after N events).

    ``close`` leaves the memory open, so a restarted SpoolingAuditStore can wrap it again.
    """

    def __init__(self) -> None:
        self.memory = MemoryAuditStore(node="prop")
        self.down = False
        self.fail_after: int | None = None

    @property
    def node(self) -> str:
        return self.memory.node

    async def start(self) -> None:
        await self.memory.start()

    def submit(self, event: AuditEvent) -> None:
        if self.down:
            raise AuditUnavailableError("down")
        if self.fail_after is not None:
            if self.fail_after <= 0:
                self.down, self.fail_after = True, None
                raise AuditUnavailableError("down")
            self.fail_after -= 1
        self.memory.submit(event)

    async def write(self, event: AuditEvent) -> None:
        self.submit(event)

    async def flush(self) -> None:
        await asyncio.sleep(0)  # a point where other operations interleave with a replay
        if self.down:
            raise AuditUnavailableError("down")

    async def close(self) -> None:
        await asyncio.sleep(0)

    def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        return self.memory.records(node=node)

    async def verify(self) -> VerifyReport:
        return await self.memory.verify()


# Weighted by repetition: mostly traffic and outages, with replays running in the background.
operations = st.lists(
    st.one_of(
        st.sampled_from(
            [
                ("submit", 0),
                ("submit", 0),
                ("submit", 0),
                ("write", 0),
                ("down", 0),
                ("down", 0),
                ("up", 0),
                ("up", 0),
                ("replay", 0),
                ("spawn_replay", 0),
                ("spawn_replay", 0),
                ("tick", 0),
                ("flush", 0),
                ("flush", 0),
                ("restart", 0),
            ]
        ),
        st.tuples(st.just("fail_after"), st.integers(0, 4)),
    ),
    max_size=40,
)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(microseconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        data={"i": i},
        payload=f'{{"n":{i}}}'.encode(),
    )


def spool_exists(path: Path) -> bool:
    return path.exists()


async def scenario(ops: list[tuple[str, int]], path: Path) -> None:
    inner = FlakyStore()
    store = SpoolingAuditStore(inner, path, retry_interval=3600)
    await store.start()
    tasks: list[asyncio.Task[bool]] = []
    n = 0
    for op, arg in ops:
        if op == "submit":
            store.submit(event(n))
            n += 1
        elif op == "write":
            await store.write(event(n))
            n += 1
        elif op == "down":
            inner.down = True
        elif op == "up":
            inner.down, inner.fail_after = False, None
        elif op == "fail_after":
            inner.fail_after = arg
        elif op == "replay":
            await store.replay()
        elif op == "spawn_replay":  # started, and left waiting in the inner store's flush
            tasks.append(asyncio.create_task(store.replay()))
            await asyncio.sleep(0)
        elif op == "tick":
            await asyncio.sleep(0)
        elif op == "flush":
            # Raises while events handed over before the outage are not confirmed yet.
            with contextlib.suppress(AuditUnavailableError):
                await store.flush()
        elif op == "restart":
            await asyncio.gather(*tasks)
            tasks.clear()
            await store.close()
            store = SpoolingAuditStore(inner, path, retry_interval=3600)
            await store.start()

    inner.down, inner.fail_after = False, None
    await asyncio.gather(*tasks)
    await store.flush()
    assert not store.spooling
    assert store.spooled == 0
    assert [r.message_id for r in inner.memory.stored] == [f"m-{i}" for i in range(n)]
    assert (await store.verify()).ok
    assert not spool_exists(path)
    await store.close()


@SETTINGS
@given(operations)
# Known-tricky interleavings, always run: an event spooled while the recovery probe (a flush
# with nothing spooled) runs, and events spooled while a replayed batch is being flushed.
@example([("submit", 0), ("down", 0), ("flush", 0), ("up", 0), ("spawn_replay", 0), ("submit", 0)])
@example([("down", 0), ("submit", 0), ("up", 0), ("spawn_replay", 0), ("submit", 0), ("write", 0)])
def test_the_inner_store_gets_every_event_once_in_order(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(ops, Path(tmp) / "spool" / "audit.jsonl"))
