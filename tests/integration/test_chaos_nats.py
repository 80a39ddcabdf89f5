"""Chaos on NATS, each test against a private ``nats-server`` whose JetStream store lives in
the test's temporary directory.

1. Real processes: a worker killed with SIGKILL in the middle of a stream; its unacknowledged
   messages go to the other worker and none is lost.
2. The server restarted during a 5,000-request governed run (policy evaluated, audited, agent
   in a second app with its own connection): no request lost, none handled twice, every one
   answered.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest

from govbus import FAILED, Message
from govbus.audit.memory import MemoryAuditStore
from govbus.errors import BusError, BusUnavailableError
from tests.apps.chaos import create_app, create_reply_app
from tests.integration.workers import start_worker as start
from tests.nats_server import NatsServer, nats_server_or_skip

pytest.importorskip("nats", reason="the nats extra (nats-py) is not installed")

import nats

from govbus.bus.nats import NatsBus  # after the importorskip above

pytestmark = [pytest.mark.nats, pytest.mark.slow]

N = 400


async def start_worker(url: str, log: Path) -> asyncio.subprocess.Process:
    return await start(
        "tests.apps.chaos:create_app", url, ["crunch"], env={"GOVBUS_CHAOS_LOG": str(log)}
    )


def handled(log: Path) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line)


async def test_a_worker_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    server = nats_server_or_skip(tmp_path)
    log = tmp_path / "handled.log"
    workers: list[asyncio.subprocess.Process] = []
    client = create_app(bus=server.url)
    try:
        workers = [await start_worker(server.url, log) for _ in range(2)]
        await client.start(agents=[])
        for n in range(N):
            await client.publish(Message(type="work.item", sender="feeder", payload={"n": n}))
        async with asyncio.timeout(30):
            while sum(handled(log).values()) < N // 4:  # noqa: ASYNC110 (other processes)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)  # into the next handlers (50 ms each), not right after one
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)  # mid-stream: it holds unacknowledged messages
        await victim.wait()
        async with asyncio.timeout(90):  # its messages come back after ack_wait (30 s)
            while len(handled(log)) < N:  # noqa: ASYNC110 (a file other processes write)
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything handled twice would show up by now
    finally:
        await client.close()
        for proc in workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
        server.close()
    counts = handled(log)
    assert set(counts) == {str(n) for n in range(N)}  # none lost
    by_pid = Counter(line.split()[1] for line in log.read_text().splitlines())
    assert len(by_pid) == 2  # both workers took part
    twice = [n for n, c in counts.items() if c > 1]
    # Exactly once, except a message whose handler had finished its side effect in the killed
    # process in the instant before it could record it done: at most one per slot in flight.
    assert len(twice) <= 4, twice


# -- 2. the server restarted mid-run --------------------------------------------------------

REQUESTS = 5000
IN_FLIGHT = 200  # requests awaiting their answer at once
RESTART_AT = 1500  # handler invocations before the restart
DOWN_FOR = 1.0  # seconds the server stays down: publishes, claims and acks meet the outage
ACK_WAIT = 3.0  # the worker's consumer: a delivery whose ack the restart lost comes back soon
ANSWER = "work.answer"


async def unsettled(server: NatsServer, stream: str, consumer: str) -> tuple[int, int]:
    """``(pending, ack_pending)`` of a consumer once both are 0, or after 5 x ``ACK_WAIT``: a
    message still unacknowledged would come back (and could be handled again) after the test,
    and one whose ack the restart lost comes back within that time."""
    nc = await nats.connect(server.url)
    left = (-1, -1)
    try:
        js = nc.jetstream()
        async with asyncio.timeout(5 * ACK_WAIT):
            while left != (0, 0):
                info = await js.consumer_info(stream, consumer)
                left = (info.num_pending or 0, info.num_ack_pending or 0)
                await asyncio.sleep(0.05)
    except TimeoutError:
        pass
    finally:
        await nc.close()
    return left


async def test_a_server_restart_mid_run_loses_nothing_and_handles_nothing_twice(
    tmp_path: Path,
) -> None:
    """5,000 governed requests (client app -> policy, audit -> NATS -> worker app -> agent ->
    answer), the server restarted (SIGTERM, down for a second, same port and store) after
    1,500 handler invocations. Each request is handled exactly once and answered: ``work.answer``
    or, had its publish failed for good in the outage, ``govbus.failed`` (``bus_unavailable``)
    without being handled; never both, never neither."""
    server = nats_server_or_skip(tmp_path)  # JetStream file store in tmp_path: survives restart
    calls: Counter[str] = Counter()  # handler invocations per message id (the side effect)
    worker = create_reply_app(
        bus=NatsBus(server.url, name="chaos-worker", ack_wait=ACK_WAIT),
        name="chaos-worker",
        handled=lambda message: calls.update((message.id,)),
    )
    client = create_reply_app(bus=NatsBus(server.url, name="chaos-client"), name="chaos-client")
    asks = [Message(type="work.ask", sender="feeder", payload={"n": n}) for n in range(REQUESTS)]
    answers: dict[str, Message] = {}  # request id -> its final answer
    refused: dict[str, BusError] = {}  # request id -> the error its publish raised
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def ask(message: Message) -> None:
        async with gate:
            try:
                answers[message.id] = await client.request(message, timeout=30.0)
            except BusError as exc:  # refused at publish: must never be handled
                refused[message.id] = exc

    pid_before = server.pid
    run: asyncio.Future[list[None]] | None = None
    try:
        await worker.start()
        await client.start(agents=[])
        async with asyncio.timeout(120):
            run = asyncio.gather(*(ask(m) for m in asks))
            while sum(calls.values()) < RESTART_AT:  # noqa: ASYNC110 (the handler counts)
                await asyncio.sleep(0.005)
            at_restart = sum(calls.values())
            await asyncio.to_thread(server.restart, down_for=DOWN_FOR)
            pid_after = server.pid
            after_restart = sum(calls.values())
            await run
        left = await unsettled(server, "GOVBUS", "g_answer")
    finally:
        if run is not None:
            run.cancel()
        await client.close()
        await worker.close()
        server.close()

    # The fault came in the middle of the run, and most of the work after it.
    assert pid_after is not None and pid_after != pid_before
    assert RESTART_AT <= at_restart < REQUESTS // 2
    assert sum(calls.values()) - after_restart >= REQUESTS // 4
    ids = {m.id: m.payload["n"] for m in asks}
    assert set(calls) <= set(ids)  # only our requests were handled
    ok: list[int] = []  # handled once, answered work.answer
    failed: list[int] = []  # refused at publish (error or govbus.failed), never handled
    lost: list[int] = []  # neither: no answer, or an answer that says neither
    twice: list[int] = []  # handled more than once
    both: list[int] = []  # answered failed, but handled anyway
    wrong: list[int] = []  # answered work.answer, but not handled exactly once (or not its n)
    for message_id, n in ids.items():
        answer = answers.get(message_id)
        handled = calls[message_id]
        if handled > 1:
            twice.append(n)
        if answer is not None and answer.type == ANSWER:
            (ok if answer.payload == {"n": n} and handled == 1 else wrong).append(n)
        elif message_id in refused or (
            answer is not None
            and answer.type == FAILED
            and answer.payload.get("code") == BusUnavailableError.code
        ):
            (both if handled else failed).append(n)
        else:
            lost.append(n)
    examples = [(calls[m], answers.get(m)) for m, n in ids.items() if n in lost[:3]]
    assert not lost, (len(lost), lost[:20], examples)
    assert not twice, (len(twice), twice[:20])
    assert not both, (len(both), both[:20])
    assert not wrong, (len(wrong), wrong[:20])
    assert len(ok) + len(failed) == REQUESTS
    assert len(ok) == sum(calls.values())  # every invocation answered, each exactly once
    assert left == (0, 0)  # nothing left unacknowledged that could come back later

    # Governed: every request decided by the client's policy and audited; every invocation
    # audited by the worker (a redelivery the restart caused is audited as a duplicate).
    assert isinstance(client.audit, MemoryAuditStore)
    assert isinstance(worker.audit, MemoryAuditStore)
    decided = Counter(
        r.message_id for r in client.audit.stored if r.kind == "decision" and r.outcome == "allow"
    )
    assert all(decided[m] == 1 for m in ids)
    delivered = Counter(
        r.message_id for r in worker.audit.stored if r.kind == "delivery" and r.outcome == "ok"
    )
    assert +delivered == +calls
    assert (await client.audit.verify()).ok
    assert (await worker.audit.verify()).ok
