"""The dead-letter queue on the dispatch path: what goes in, with which cause, and replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.audit import MemoryAuditStore
from govbus.bus import InMemoryBus, SqlDeadLetterStore
from govbus.envelope import DEGRADED, FALLBACK_CAUSE, Message
from govbus.errors import ConfigError, DeadLetterNotFoundError
from govbus.models import ModelUnavailableError
from govbus.orchestrator import DENIED, App
from govbus.orchestrator.app import REPLAY_OF, default_dlq_url
from govbus.registry import Context

from .conftest import policy, records
from .test_dispatch import ask


def add_agents(app: App, broken: list[bool], *, attempts: int = 3) -> list[int]:
    """An advisor that raises a retryable error while ``broken[0]``; a snapshot fallback."""
    calls: list[int] = []

    @app.agent(
        "advisor",
        handles="portfolio.advise",
        fallback="snapshot",
        max_attempts=attempts,
        timeout=1.0,
    )
    async def advisor(msg: Message, ctx: Context) -> Message:
        calls.append(msg.attempt)
        if broken[0]:
            raise ModelUnavailableError("provider answered 503")
        return ctx.reply("portfolio.advice", {"text": "live"})

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"text": "snapshot"})

    return calls


async def test_a_message_that_fails_every_attempt_is_dead_lettered_with_its_cause(
    app: App,
) -> None:
    calls = add_agents(app, [True])
    reply = await app.request(ask(account="A-1"))
    # Three attempts (the bus redelivered twice), then the fallback answered, degraded.
    assert calls == [1, 2, 3]
    assert reply.payload == {"text": "snapshot"}
    assert reply.metadata[DEGRADED] == "true"
    assert reply.metadata[FALLBACK_CAUSE] == "model_unavailable"
    (letter,) = await app.bus.dead_letters()
    assert letter.address == "advisor"
    assert letter.attempts == 3
    assert letter.cause == "model_unavailable: provider answered 503"
    assert letter.message.payload == {"account": "A-1"}


async def test_a_permanent_error_is_dead_lettered_at_once(app: App) -> None:
    @app.agent("advisor", handles="portfolio.advise", max_attempts=5)
    async def advisor(msg: Message, ctx: Context) -> Message:
        raise ValueError("negative quantity")

    reply = await app.request(ask())
    assert reply.payload["code"] == "exception"
    (letter,) = await app.bus.dead_letters()
    assert letter.attempts == 1  # not retryable: no point trying again
    assert "negative quantity" in letter.cause


async def test_replay_goes_through_governance_again_and_clears_the_entry(
    app: App, audit: MemoryAuditStore
) -> None:
    broken = [True]
    calls = add_agents(app, broken)
    first = await app.request(ask(account="A-1"))
    assert first.metadata[DEGRADED] == "true"
    (letter,) = await app.bus.dead_letters()

    broken[0] = False  # the provider is back
    reply = await app.replay(letter.id[:8], by="ops@bank")
    assert reply.payload == {"text": "live"}
    assert DEGRADED not in reply.metadata
    assert await app.bus.dead_letters() == []
    assert calls[-1] == 1  # a fresh delivery, first attempt
    stored = await records(audit)
    (admin,) = [r for r in stored if r.outcome == "dlq_replay"]
    assert admin.data == {
        "entry": letter.id,
        "replay_of": letter.message.id,
        "agent": "advisor",
        "by": "ops@bank",
    }
    # Governed again: a new decision record for the replayed message, which names the original.
    decisions = [r for r in stored if r.kind == "decision" and r.message_id == admin.message_id]
    assert [d.outcome for d in decisions] == ["allow"]
    with pytest.raises(DeadLetterNotFoundError):
        await app.replay(letter.id, by="ops@bank")


async def test_a_replay_that_fails_again_becomes_a_new_dead_letter(app: App) -> None:
    add_agents(app, [True], attempts=1)  # two failures in all: the breaker stays closed
    await app.request(ask())
    (letter,) = await app.bus.dead_letters()
    reply = await app.replay(letter, by="ops")
    assert reply.metadata[FALLBACK_CAUSE] == "model_unavailable"
    (again,) = await app.bus.dead_letters()
    assert again.id != letter.id
    assert again.message.metadata[REPLAY_OF] == letter.message.id


async def test_a_replay_the_policy_now_denies_is_denied(app: App) -> None:
    add_agents(app, [True])
    await app.request(ask())
    (letter,) = await app.bus.dead_letters()
    # The policy only lets advisors ask for advice: replayed as a customer, it is denied.
    customer = letter.message.model_copy(update={"actor": ask(actor=None).actor})
    tampered = type(letter)(**{**_fields(letter), "message": customer})
    await app.bus.dead_letter_store.remove(letter.id)
    await app.bus.dead_letter_store.put(tampered)
    reply = await app.replay(tampered.id, by="ops")
    assert reply.type == DENIED
    assert await app.bus.dead_letters() == []


def _fields(letter: object) -> dict[str, object]:
    return {name: getattr(letter, name) for name in letter.__dataclass_fields__}  # type: ignore[attr-defined]


async def test_with_dead_lettering_off_nothing_is_kept() -> None:
    app = App("t", policy=policy(), audit=MemoryAuditStore(), dead_letter=False)
    add_agents(app, [True], attempts=1)
    async with app:
        reply = await app.request(ask())
        assert reply.metadata[FALLBACK_CAUSE] == "model_unavailable"
        assert await app.bus.dead_letters() == []


async def test_dead_letters_persist_in_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dlq.db"
    app = App("t", policy=policy(), audit=MemoryAuditStore(), dlq=url)
    add_agents(app, [True], attempts=1)
    async with app:
        await app.request(ask(account="A-9"))
    store = SqlDeadLetterStore(url)
    try:
        (letter,) = await store.entries()
        assert letter.message.payload == {"account": "A-9"}
    finally:
        await store.close()


def test_the_default_dlq_sits_beside_the_audit_log() -> None:
    assert default_dlq_url("memory://") == "memory://"
    assert default_dlq_url("/var/lib/govbus/audit.db") == "sqlite:////var/lib/govbus/dlq.db"
    assert default_dlq_url("postgresql://db/audit") == "postgresql://db/audit"


def test_dlq_needs_a_bus_built_from_a_url() -> None:
    with pytest.raises(ConfigError, match="dead-letter store"):
        App("t", bus=InMemoryBus(), dlq="memory://")


async def test_an_app_with_an_audit_spool_loses_nothing_while_the_store_is_down(
    tmp_path: Path,
) -> None:
    from govbus.drills import Fault, FaultyAuditStore, Trigger

    store = MemoryAuditStore()
    down = FaultyAuditStore(store, Trigger(Fault(kind="audit_down", after=3, first=1)))
    app = App("t", policy=policy(), audit=down, audit_spool=tmp_path / "audit.spool")
    add_agents(app, [False])
    async with app:
        for _ in range(3):
            assert (await app.request(ask())).payload == {"text": "live"}
    assert down.refused == 1  # then the store was back: close replayed the spool
    assert (await store.verify()).ok
    kinds = [r.kind for r in store.stored]
    assert kinds.count("decision") == 6 and kinds[0] == "admin" and kinds[-1] == "admin"


def test_a_sql_audit_url_gets_the_stores_own_spool(tmp_path: Path) -> None:
    from govbus.audit import SqlAuditStore

    app = App("t", audit=f"sqlite:///{tmp_path}/a.db", audit_spool=tmp_path / "s",
              audit_writer="thread")  # fmt: skip
    assert isinstance(app.audit, SqlAuditStore)
    assert app.audit._spool == (tmp_path / "s").absolute()
    assert app.audit._mode == "thread"  # audit_writer is honoured
    with pytest.raises(ConfigError, match="SqlAuditStore\\(url, spool"):
        App("t", audit=app.audit, audit_spool=tmp_path / "s")
