"""Policy consistency across processes: every dispatched message carries the sha256 of the
policy that allowed it, and delivery refuses one decided under a policy it does not accept."""

from __future__ import annotations

from govbus.audit import MemoryAuditStore
from govbus.bus import InMemoryBus
from govbus.envelope import POLICY_SHA256, Message
from govbus.orchestrator import FAILED, App
from govbus.registry import Context

from .conftest import POLICY, policy, records
from .test_dispatch import ask

NEWER = POLICY.replace('version: "1"', 'version: "2"')


def two_processes(*, accept: tuple[str, ...] = ()) -> tuple[App, App, MemoryAuditStore, list[str]]:
    """A client process on policy v1 and a worker process on policy v2, sharing one bus; both
    know the advisor, only the worker runs it (as ``govbus worker --agents`` would)."""
    bus = InMemoryBus()
    handled: list[str] = []
    worker_audit = MemoryAuditStore()
    client = App("client", policy=policy(), bus=bus, audit=MemoryAuditStore())
    worker = App("worker", policy=policy(NEWER), bus=bus, audit=worker_audit,
                 accept_policies=accept)  # fmt: skip
    for app in (client, worker):

        @app.agent("advisor", handles="portfolio.advise")
        async def advisor(msg: Message, ctx: Context) -> Message:
            handled.append(msg.metadata[POLICY_SHA256])
            return ctx.reply("portfolio.advice", {"text": "live"})

    return client, worker, worker_audit, handled


async def test_a_dispatched_message_carries_its_policy_hash(app: App) -> None:
    seen: list[str] = []

    @app.agent("advisor", handles="portfolio.advise")
    async def advisor(msg: Message, ctx: Context) -> Message:
        seen.append(msg.metadata[POLICY_SHA256])
        return ctx.reply("portfolio.advice", {})

    # A client cannot choose the hash: whatever it sends is overwritten by the deciding policy.
    forged = ask().model_copy(update={"metadata": {POLICY_SHA256: "0" * 64}})
    await app.request(forged)
    assert seen == [app.policy.sha256]


async def test_a_worker_refuses_a_message_decided_under_another_policy() -> None:
    client, worker, worker_audit, handled = two_processes()
    await worker.start(agents=["advisor"])
    await client.start(agents=[])
    try:
        reply = await client.request(ask())
    finally:
        await client.close()
        await worker.close()
    assert handled == []
    assert reply.type == FAILED and reply.payload["code"] == "policy_mismatch"
    stored = await records(worker_audit)
    (rejected,) = [r for r in stored if r.kind == "rejected" and r.outcome == "policy_mismatch"]
    assert rejected.data["decided_under"] == client.policy.sha256
    (letter,) = await worker.bus.dead_letters()
    assert letter.cause.startswith("policy_mismatch: message was dispatched under policy")


async def test_a_worker_accepts_a_listed_policy_during_a_rolling_upgrade() -> None:
    old_sha = policy().sha256
    client, worker, _, handled = two_processes(accept=(old_sha,))
    await worker.start(agents=["advisor"])
    await client.start(agents=[])
    try:
        reply = await client.request(ask())
    finally:
        await client.close()
        await worker.close()
    assert reply.payload == {"text": "live"}
    assert handled == [old_sha]


async def test_a_message_that_skipped_governance_is_refused(app: App) -> None:
    handled: list[Message] = []

    @app.agent("advisor", handles="portfolio.advise")
    async def advisor(msg: Message, ctx: Context) -> Message:
        handled.append(msg)
        return ctx.reply("portfolio.advice", {})

    await app.start()
    # Straight onto the bus, around the orchestrator: no policy decided it.
    await app.bus.publish(ask().model_copy(update={"to": "advisor"}))
    await app.close()
    assert handled == []
    (letter,) = await app.bus.dead_letters()
    assert "no policy hash" in letter.cause
