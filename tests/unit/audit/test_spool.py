"""SpoolingAuditStore: spool to a local file while the audit store is down, replay in order."""

from __future__ import annotations

import asyncio
import enum
import errno
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from govbus.audit import AuditStore, MemoryAuditStore, SpoolingAuditStore
from govbus.audit.base import AuditEvent, AuditRecord, VerifyReport
from govbus.audit.spool import parse_spool_line, spool_line
from govbus.errors import AuditError, AuditUnavailableError

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
NODE = "spool-test"
LOGGER = "govbus.audit.spool"
FAST = 0.002  # retry_interval for tests that let the background task replay
NEVER = 3600.0  # retry_interval for tests that replay explicitly


def event(i: int, **data: object) -> AuditEvent:
    return AuditEvent(
        kind="decision",
        ts=T0 + timedelta(seconds=i),
        outcome="allow",
        message_id=f"m-{i}",
        sender="a",
        recipient="b",
        data={"i": i, **data},
    )


class FlakyStore:
    """A MemoryAuditStore behind a switch: while ``down``, submit, write and flush raise.

    Attributes:
        fail_after: accept this many more events, then go down (raising for the next one).
        capacity: submit (not write) refuses events once this many are stored, like a full
            queue; flush still works.
        gate: flush waits for it, so a test can hold a replay pass in the middle.
    """

    def __init__(self, node: str = NODE) -> None:
        self.memory = MemoryAuditStore(node=node)
        self.down = False
        self.fail_after: int | None = None
        self.capacity: int | None = None
        self.gate = asyncio.Event()
        self.gate.set()
        self.flushes = 0

    @property
    def node(self) -> str:
        return self.memory.node

    @property
    def ids(self) -> list[str | None]:
        return [record.message_id for record in self.memory.stored]

    async def start(self) -> None:
        await self.memory.start()

    def _take(self, event: AuditEvent) -> None:
        if self.down:
            raise AuditUnavailableError("audit database down (test)")
        if self.fail_after is not None:
            if self.fail_after <= 0:
                self.down = True
                self.fail_after = None
                raise AuditUnavailableError("audit database down (test)")
            self.fail_after -= 1
        self.memory.submit(event)

    def submit(self, event: AuditEvent) -> None:
        if self.capacity is not None and len(self.memory.stored) >= self.capacity:
            raise AuditUnavailableError("audit queue full (test)")
        self._take(event)

    async def write(self, event: AuditEvent) -> None:
        self._take(event)

    async def flush(self) -> None:
        self.flushes += 1
        await self.gate.wait()
        if self.down:
            raise AuditUnavailableError("audit database down (test)")

    async def close(self) -> None:
        await self.memory.close()

    def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        return self.memory.records(node=node)

    async def verify(self) -> VerifyReport:
        return await self.memory.verify()


@pytest.fixture
def inner() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "audit.jsonl"


@pytest.fixture
async def store(inner: FlakyStore, spool_path: Path) -> AsyncIterator[SpoolingAuditStore]:
    s = SpoolingAuditStore(inner, spool_path, retry_interval=NEVER)
    await s.start()
    yield s
    await s.close()


# Sync helpers: file checks in async tests go through these (ruff ASYNC240).
def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def exists(path: Path) -> bool:
    return path.exists()


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def size(path: Path) -> int:
    return path.stat().st_size


def ids(n: int, start: int = 0) -> list[str]:
    return [f"m-{i}" for i in range(start, n)]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def test_it_satisfies_the_audit_store_protocol(inner: FlakyStore, spool_path: Path) -> None:
    store: AuditStore = SpoolingAuditStore(inner, spool_path)
    assert store.node == NODE


def test_arguments_are_checked(inner: FlakyStore, spool_path: Path) -> None:
    with pytest.raises(ValueError, match="retry_interval"):
        SpoolingAuditStore(inner, spool_path, retry_interval=0)
    with pytest.raises(ValueError, match="close_timeout"):
        SpoolingAuditStore(inner, spool_path, close_timeout=-1)


async def test_writes_are_refused_before_start_and_after_close(
    inner: FlakyStore, spool_path: Path
) -> None:
    store = SpoolingAuditStore(inner, spool_path)
    with pytest.raises(AuditError, match="not started"):
        store.submit(event(0))
    await store.start()
    await store.start()  # idempotent
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        await store.write(event(1))
    with pytest.raises(AuditError, match="closed"):
        await store.start()


async def test_pass_through_writes_nothing_to_disk(
    store: SpoolingAuditStore, inner: FlakyStore, spool_path: Path
) -> None:
    store.submit(event(0))
    await store.write(event(1))
    await store.flush()
    assert inner.ids == ids(2)
    assert (await store.verify()).ok
    assert [r.message_id async for r in store.records(node=NODE)] == ids(2)
    assert not store.spooling
    assert store.spooled == store.spooled_total == store.replayed_total == 0
    assert not exists(spool_path.parent)


async def test_outage_is_spooled_then_replayed_in_order_exactly_once(
    inner: FlakyStore, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = SpoolingAuditStore(inner, spool_path, retry_interval=FAST)
    await store.start()
    for i in range(3):
        store.submit(event(i))
    await store.flush()
    inner.down = True
    store.submit(event(3))
    await store.write(event(4))
    store.submit(event(5))
    assert store.spooling
    assert store.spooled == store.spooled_total == 3
    assert [parse_spool_line(line).message_id for line in lines(spool_path)] == ids(6, 3)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(spool_path) in warnings[0].getMessage()
    assert "audit database down (test)" in warnings[0].getMessage()
    assert inner.ids == ids(3)

    await store.flush()  # still down: the events are safe in the spool, so no error
    inner.down = False
    await wait_until(lambda: not store.spooling)
    store.submit(event(6))
    await store.flush()
    assert inner.ids == ids(7)
    assert (await store.verify()).ok
    assert not exists(spool_path)
    assert store.spooled == 0
    assert store.replayed_total == 3
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("replayed 3 spooled audit events" in m and str(spool_path) in m for m in infos)
    await store.close()


async def test_events_spooled_during_a_replay_follow_the_earlier_ones(
    store: SpoolingAuditStore, inner: FlakyStore
) -> None:
    inner.down = True
    for i in range(5):
        store.submit(event(i))
    inner.down = False
    inner.gate.clear()  # the pass hands the five over, then waits in flush
    replay = asyncio.create_task(store.replay())
    await wait_until(lambda: len(inner.ids) == 5)
    assert store.spooling
    for i in range(5, 8):
        store.submit(event(i))
    await store.write(event(8))
    assert inner.ids == ids(5)  # the new ones are behind the spooled ones, not direct
    inner.gate.set()
    assert await replay
    store.submit(event(9))
    await store.flush()
    assert inner.ids == ids(10)
    assert (await store.verify()).ok
    assert store.replayed_total == 9


async def test_write_during_an_outage_returns_once_the_line_is_fsynced(
    store: SpoolingAuditStore,
    inner: FlakyStore,
    spool_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synced: list[os.stat_result] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd))
        real_fsync(fd)

    def spool_synced() -> bool:
        return any(os.path.samestat(st, spool_path.stat()) for st in synced)

    monkeypatch.setattr(os, "fsync", spy)
    inner.down = True
    store.submit(event(0))
    assert not spool_synced()  # submit appends without fsync
    await store.write(event(1))
    assert spool_synced()
    assert [parse_spool_line(line).message_id for line in lines(spool_path)] == ids(2)
    assert os.stat(spool_path).st_mode & 0o777 == 0o600


async def test_an_unwritable_spool_fails_closed(
    inner: FlakyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    path = blocker / "audit.jsonl"
    store = SpoolingAuditStore(inner, path, retry_interval=NEVER)
    await store.start()
    inner.down = True
    with pytest.raises(AuditUnavailableError) as info:
        store.submit(event(0))
    assert str(path) in info.value.message
    assert "audit database down (test)" in info.value.message
    with pytest.raises(AuditUnavailableError, match="cannot spool"):
        await store.write(event(1))
    assert store.spooling
    assert store.spooled == store.spooled_total == 0
    inner.down = False
    assert await store.replay()  # nothing spooled: direct writes resume once inner is up
    store.submit(event(2))
    await store.flush()
    assert inner.ids == ["m-2"]
    await store.close()


async def test_a_failed_append_leaves_no_half_line(
    store: SpoolingAuditStore,
    inner: FlakyStore,
    spool_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inner.down = True
    store.submit(event(0))
    before = size(spool_path)
    real_write = os.write

    def disk_full(fd: int, data: bytes) -> int:
        if fd != store._fd:
            return real_write(fd, data)
        real_write(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(AuditUnavailableError, match="No space left on device"):
        await store.write(event(1))
    assert size(spool_path) == before
    monkeypatch.setattr(os, "write", real_write)
    store.submit(event(2))
    assert [parse_spool_line(line).message_id for line in lines(spool_path)] == ["m-0", "m-2"]
    inner.down = False
    await store.flush()
    assert inner.ids == ["m-0", "m-2"]


async def test_a_crashed_runs_spool_is_replayed_on_start_before_new_events(
    inner: FlakyStore, spool_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = SpoolingAuditStore(inner, spool_path, retry_interval=NEVER)
    await first.start()
    inner.down = True
    for i in range(4):
        first.submit(event(i))
    crashed = tmp_path / "crashed" / "audit.jsonl"
    write(crashed, read(spool_path))  # the disk as a crash would leave it
    await first.close()

    caplog.set_level(logging.INFO, logger=LOGGER)
    fresh = FlakyStore(node="after-crash")
    second = SpoolingAuditStore(fresh, crashed, retry_interval=NEVER)
    await second.start()
    assert any("found 4 audit events" in r.getMessage() for r in caplog.records)
    second.submit(event(4))
    await second.write(event(5))
    await second.flush()
    assert fresh.ids == ids(6)
    assert (await second.verify()).ok
    assert not exists(crashed)
    await second.close()


async def test_leftovers_stay_ahead_of_new_events_while_inner_is_still_down(
    inner: FlakyStore, spool_path: Path
) -> None:
    write(spool_path, b"".join(spool_line(event(i)) for i in range(3)))
    inner.down = True
    store = SpoolingAuditStore(inner, spool_path, retry_interval=FAST)
    await store.start()
    assert store.spooling
    assert store.spooled == 3
    store.submit(event(3))
    inner.down = False
    await wait_until(lambda: not store.spooling)
    store.submit(event(4))
    await store.flush()
    assert inner.ids == ids(5)
    await store.close()


async def test_a_torn_last_line_is_dropped_with_a_warning(
    inner: FlakyStore, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = spool_line(event(0)) + spool_line(event(1))
    write(spool_path, good + spool_line(event(2))[:25])
    store = SpoolingAuditStore(inner, spool_path, retry_interval=NEVER)
    await store.start()
    torn = [r.getMessage() for r in caplog.records if "torn last line" in r.getMessage()]
    assert len(torn) == 1 and str(spool_path) in torn[0]
    store.submit(event(3))
    await store.flush()
    assert inner.ids == ["m-0", "m-1", "m-3"]
    assert not exists(spool_path)
    await store.close()


async def test_a_malformed_line_stops_replay_there(
    inner: FlakyStore, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(spool_path, spool_line(event(0)) + b'{"v": 1, "kind": \n' + spool_line(event(1)))
    store = SpoolingAuditStore(inner, spool_path, retry_interval=NEVER)
    await store.start()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert str(spool_path) in errors[0] and "line 2" in errors[0]
    assert inner.ids == ["m-0"]  # replayed up to the bad line
    store.submit(event(2))  # still spooled, behind the bad line
    with pytest.raises(AuditError, match="malformed"):
        await store.flush()
    assert inner.ids == ["m-0"]
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1  # said once
    await store.close()
    assert len(lines(spool_path)) == 3  # the bad line and everything after it are kept


async def test_no_payload_bytes_on_disk_and_the_replayed_record_is_identical(
    store: SpoolingAuditStore, inner: FlakyStore, spool_path: Path
) -> None:
    payload = b'{"note":"TOPSECRET-7f3a91","amount":12}'
    original = AuditEvent(
        kind="delivery",
        ts=T0,
        outcome="ok",
        message_id="m-secret",
        msg_type="order.created",
        data={"handler": "billing"},
        payload=payload,
    )
    inner.down = True
    await store.write(original)
    on_disk = read(spool_path)
    assert b"TOPSECRET" not in on_disk
    assert payload not in on_disk
    inner.down = False
    await store.flush()

    reference = MemoryAuditStore(node=NODE)
    await reference.start()
    reference.submit(original)
    assert inner.memory.stored == reference.stored  # same fields, data, hash
    replayed = inner.memory.stored[0]
    assert replayed.data["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert replayed.data == {
        "handler": "billing",
        "payload_sha256": replayed.data["payload_sha256"],
    }


class Kind(enum.StrEnum):
    ADMIN = "admin"


async def test_odd_values_replay_to_the_record_the_inner_store_would_have_made(
    store: SpoolingAuditStore, inner: FlakyStore
) -> None:
    odd = [
        AuditEvent(
            kind=Kind.ADMIN,
            ts=T0,
            outcome="ok",
            sender="nul\x00here",
            data={"amount": Decimal("1.50"), "tags": {"b", "a"}, "f": 0.1},
            payload=b"x",
        ),
        AuditEvent(kind="admin", ts=T0, outcome="ok", data={"bad": object()}),
    ]
    inner.down = True
    for item in odd:
        store.submit(item)
    inner.down = False
    await store.flush()

    reference = MemoryAuditStore(node=NODE)
    await reference.start()
    for item in odd:
        reference.submit(item)
    assert inner.memory.stored == reference.stored
    assert (await store.verify()).ok


async def test_a_partial_replay_never_hands_an_event_over_twice(
    store: SpoolingAuditStore, inner: FlakyStore, spool_path: Path
) -> None:
    inner.down = True
    for i in range(10):
        store.submit(event(i))
    inner.down = False
    inner.capacity = 3  # takes three, then refuses; flush works
    assert not await store.replay()
    assert inner.ids == ids(3)
    assert store.spooled == 7 and store.replayed_total == 3
    assert [parse_spool_line(line).message_id for line in lines(spool_path)] == ids(10, 3)

    inner.capacity = None
    inner.fail_after = 2  # takes two more, then goes down before flush
    assert not await store.replay()
    assert inner.ids == ids(5)
    assert store.spooled == 7  # handed over but not confirmed: still in the spool
    inner.down = False
    assert await store.replay()
    assert inner.ids == ids(10)  # the two unconfirmed ones were not handed over again
    assert store.replayed_total == 10
    assert (await store.verify()).ok


async def test_flush_raises_for_direct_events_it_cannot_confirm(
    store: SpoolingAuditStore, inner: FlakyStore
) -> None:
    store.submit(event(0))
    inner.down = True
    with pytest.raises(AuditUnavailableError, match="down"):
        await store.flush()
    assert store.spooling  # known down: later events go to the spool
    store.submit(event(1))
    with pytest.raises(AuditUnavailableError, match="1 audit events handed"):
        await store.flush()
    inner.down = False
    await store.flush()
    assert inner.ids == ids(2)


async def test_close_while_still_down_keeps_the_spool_for_the_next_start(
    inner: FlakyStore, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SpoolingAuditStore(inner, spool_path, retry_interval=FAST, close_timeout=0.5)
    await store.start()
    inner.down = True
    for i in range(3):
        store.submit(event(i))
    await store.close()
    assert len(lines(spool_path)) == 3
    closing = [r.getMessage() for r in caplog.records if "closed with" in r.getMessage()]
    assert len(closing) == 1
    assert "3 events" in closing[0] and str(spool_path) in closing[0]

    later = FlakyStore(node="later")
    again = SpoolingAuditStore(later, spool_path, retry_interval=NEVER)
    await again.start()
    await again.close()
    assert later.ids == ids(3)
    assert not exists(spool_path)


async def test_close_replays_when_the_store_is_back(
    store: SpoolingAuditStore, inner: FlakyStore, spool_path: Path
) -> None:
    inner.down = True
    store.submit(event(0))
    inner.down = False
    await store.close()
    assert inner.ids == ["m-0"]
    assert not exists(spool_path)


async def test_close_bounds_its_last_replay(
    inner: FlakyStore, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SpoolingAuditStore(inner, spool_path, retry_interval=NEVER, close_timeout=0.05)
    await store.start()
    inner.down = True
    store.submit(event(0))
    store.submit(event(1))
    inner.down = False
    inner.gate.clear()  # the inner store's flush hangs
    loop = asyncio.get_running_loop()
    began = loop.time()
    await store.close()
    assert loop.time() - began < 2.0
    # The handed-over events were taken, and the inner store's close succeeded: counted in.
    assert inner.ids == ids(2)
    assert store.spooled == 0
    assert not exists(spool_path)


async def test_an_event_spooled_while_recovery_is_probed_is_not_overtaken(
    store: SpoolingAuditStore, inner: FlakyStore
) -> None:
    store.submit(event(0))
    await store.flush()
    inner.down = True
    with pytest.raises(AuditUnavailableError):
        await store.flush()
    assert store.spooling and store.spooled == 0  # known down, nothing spooled yet
    inner.down = False
    inner.gate.clear()
    probes = inner.flushes
    replay = asyncio.create_task(store.replay())
    await wait_until(lambda: inner.flushes > probes)  # the probe waits in the inner flush
    store.submit(event(1))
    inner.gate.set()
    assert await replay
    store.submit(event(2))
    await store.flush()
    assert inner.ids == ids(3)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not a JSON object"),
        (spool_line(event(0)).replace(b'"v":1', b'"v":2'), "version 2"),
        (spool_line(event(0)).replace(b'"kind"', b'"kinds"'), "missing kind"),
        (spool_line(event(0)).replace(b'"decision"', b"7"), "kind is not a string"),
        (spool_line(event(0)).replace(b'"a"', b"[]"), "sender is neither"),
        (spool_line(event(0)).replace(b"2026-11-21T10:00:00", b"yesterday"), "ts is not"),
    ],
)
def test_malformed_spool_lines_are_rejected(line: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_spool_line(line)
