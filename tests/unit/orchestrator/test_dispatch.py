"""The governed dispatch path: allow, deny, fallbacks, failures, egress, audit."""

from __future__ import annotations

import asyncio

import pytest

from govbus.audit import MemoryAuditStore
from govbus.envelope import (
    DEGRADED,
    FALLBACK_CAUSE,
    FALLBACK_OF,
    Actor,
    Classification,
    HmacSigner,
    Message,
)
from govbus.errors import EnvelopeError, NoRouteError, SignatureError
from govbus.orchestrator import DENIED, FAILED, Alert, App
from govbus.registry import Context

from .conftest import policy, records

ADVISOR = Actor(subject="asha", roles=("advisor",))
CUSTOMER = Actor(subject="cust", roles=("customer",))


def ask(
    type: str = "portfolio.advise", actor: Actor | None = ADVISOR, **payload: object
) -> Message:
    return Message(type=type, sender="web", actor=actor, payload=dict(payload))


def add_advisor(
    app: App, *, sleep: float = 0.0, fail: bool = False, fallback: bool = True
) -> list[Message]:
    seen: list[Message] = []

    @app.agent(
        "advisor",
        handles="portfolio.advise",
        risk="high",
        timeout=0.2,
        fallback="snapshot" if fallback else None,
    )
    async def advisor(msg: Message, ctx: Context) -> Message:
        seen.append(msg)
        await asyncio.sleep(sleep)
        if fail:
            raise RuntimeError("model provider down")
        return ctx.reply("portfolio.advice", {"text": "rebalance"})

    @app.agent("snapshot", handles="portfolio.snapshot")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"text": "snapshot"})

    return seen


async def test_allowed_request_gets_the_agents_reply(app: App) -> None:
    add_advisor(app)
    reply = await app.request(ask())
    assert reply.type == "portfolio.advice"
    assert reply.payload == {"text": "rebalance"}
    assert DEGRADED not in reply.metadata
    assert reply.causation_id is not None


async def test_denied_request_answers_with_check_and_code(
    app: App, audit: MemoryAuditStore
) -> None:
    """A deny is never silent: the sender gets govbus.denied naming the check."""
    seen = add_advisor(app)
    reply = await app.request(ask(actor=CUSTOMER))
    assert reply.type == DENIED
    assert reply.payload["check"] == "advisors-only"
    assert reply.payload["code"] == "missing_role"
    assert seen == []
    deny = [r for r in await records(audit) if r.kind == "decision" and r.outcome == "deny"]
    assert len(deny) == 1
    assert deny[0].policy_sha256 == app.policy.sha256
    assert deny[0].data["deciding"] == "advisors-only"
    assert deny[0].data["checks"] == {"size": "allow", "advisors-only": "deny"}


async def test_every_decision_is_audited_with_the_policy_hash(
    app: App, audit: MemoryAuditStore
) -> None:
    add_advisor(app)
    await app.request(ask())
    decisions = [r for r in await records(audit) if r.kind == "decision"]
    assert decisions and all(r.policy_sha256 == app.policy.sha256 for r in decisions)
    assert all("payload_sha256" in r.data for r in decisions)
    assert all("rebalance" not in str(r.data) for r in await records(audit))


async def test_timeout_goes_to_fallback_marked_degraded(app: App, audit: MemoryAuditStore) -> None:
    alerts: list[Alert] = []
    app.alert = alerts.append  # the hook is read when the orchestrator is built
    add_advisor(app, sleep=5)
    reply = await app.request(ask())
    assert reply.payload == {"text": "snapshot"}
    assert reply.metadata[DEGRADED] == "true"
    assert reply.metadata[FALLBACK_CAUSE] == "timeout"
    assert reply.metadata[FALLBACK_OF] == "advisor"
    fallbacks = [r for r in await records(audit) if r.kind == "fallback"]
    assert [(r.outcome, r.data["fallback"]) for r in fallbacks] == [("timeout", "snapshot")]
    assert [(a.kind, a.agent, a.cause) for a in alerts] == [
        ("dead_letter", "advisor", "timeout"),
        ("fallback", "advisor", "timeout"),
    ]
    (letter,) = await app.bus.dead_letters()
    assert letter.address == "advisor" and letter.cause.startswith("timeout: ")


async def test_exception_goes_to_fallback(app: App) -> None:
    add_advisor(app, fail=True)
    reply = await app.request(ask())
    assert reply.metadata[FALLBACK_CAUSE] == "exception"
    assert reply.payload == {"text": "snapshot"}


async def test_no_fallback_yields_failed(app: App, audit: MemoryAuditStore) -> None:
    add_advisor(app, fail=True, fallback=False)
    reply = await app.request(ask())
    assert reply.type == FAILED
    assert reply.payload["code"] == "exception"
    assert reply.payload["agent"] == "advisor"
    assert any(r.kind == "failure" for r in await records(audit))


async def test_failing_fallback_yields_failed_and_never_loops(app: App) -> None:
    calls: list[str] = []

    @app.agent("primary", handles="job.run", fallback="backup", timeout=1)
    async def primary(msg: Message, ctx: Context) -> None:
        calls.append("primary")
        raise RuntimeError("boom")

    @app.agent("backup", handles="job.backup", fallback="primary", timeout=1)
    async def backup(msg: Message, ctx: Context) -> None:
        calls.append("backup")
        raise RuntimeError("boom too")

    reply = await app.request(ask("job.run"))
    assert reply.type == FAILED
    assert reply.payload["code"] == "fallback_failed"
    await asyncio.sleep(0.05)
    assert calls == ["primary", "backup"]


async def test_agent_outputs_are_governed(app: App) -> None:
    """Egress: a reply that breaks policy is denied, and the requester hears at once."""

    @app.agent("leaky", handles="report.make", timeout=2)
    async def leaky(msg: Message, ctx: Context) -> Message:
        return ctx.reply("report.done", {"blob": "x" * 10_000})  # over the 4 KiB limit

    reply = await app.request(ask("report.make"), timeout=2)
    assert reply.type == DENIED
    assert reply.payload["check"] == "size"


async def test_replies_never_lower_classification(app: App) -> None:
    @app.agent("summarizer", handles="doc.summarize", clearance="pii")
    async def summarize(msg: Message, ctx: Context) -> Message:
        return ctx.reply("doc.summary", {"s": "short"}, classification="public")

    msg = ask("doc.summarize").evolve(classification="pii")
    reply = await app.request(msg)
    assert reply.classification is Classification.PII


async def test_gather_runs_requests_in_parallel(app: App) -> None:
    """Each stage waits for all three to have started: only a parallel fan-out finishes."""
    started = 0
    all_started = asyncio.Event()

    for name in ("forecaster", "detector", "recommender"):

        @app.agent(name, handles=f"{name}.run", timeout=2)
        async def stage(msg: Message, ctx: Context) -> Message:
            nonlocal started
            started += 1
            if started == 3:
                all_started.set()
            await asyncio.wait_for(all_started.wait(), 1.5)
            return ctx.reply(f"{msg.type}.done", {"ok": True})

    replies = await app.gather(
        [ask(f"{n}.run") for n in ("forecaster", "detector", "recommender")], timeout=3
    )
    assert [r.type for r in replies] == [
        "forecaster.run.done",
        "detector.run.done",
        "recommender.run.done",
    ]


async def test_agent_fan_out_aggregates_by_correlation(app: App) -> None:
    @app.agent("worker_a", handles="part.a")
    async def part_a(msg: Message, ctx: Context) -> Message:
        return ctx.reply("part.done", {"a": 1})

    @app.agent("worker_b", handles="part.b")
    async def part_b(msg: Message, ctx: Context) -> Message:
        return ctx.reply("part.done", {"b": 2})

    @app.agent("aggregator", handles="whole.make", timeout=2)
    async def aggregate(msg: Message, ctx: Context) -> Message:
        parts = await ctx.gather([ctx.new("part.a"), ctx.new("part.b")])
        assert all(p.correlation_id == msg.id for p in parts)
        merged: dict[str, object] = {}
        for p in parts:
            merged.update(p.payload)
        return ctx.reply("whole.done", merged)

    reply = await app.request(ask("whole.make"))
    assert reply.payload == {"a": 1, "b": 2}


async def test_missing_sub_result_marks_the_answer_partial(app: App) -> None:
    @app.agent("flaky", handles="part.flaky")
    async def flaky(msg: Message, ctx: Context) -> Message:
        raise ValueError("bad data")

    @app.agent("collector", handles="whole.collect", timeout=2)
    async def collect(msg: Message, ctx: Context) -> Message:
        (part,) = await ctx.gather([ctx.new("part.flaky")])
        return ctx.reply("whole.done", {"got": part.type})

    reply = await app.request(ask("whole.collect"))
    assert reply.payload == {"got": FAILED}
    assert reply.metadata[DEGRADED] == "true"
    assert reply.metadata["partial"] == "flaky:exception"


async def test_unknown_type_raises_no_route_naming_it(app: App, audit: MemoryAuditStore) -> None:
    add_advisor(app)
    with pytest.raises(NoRouteError, match=r"'nobody\.handles'"):
        await app.publish(ask("nobody.handles"))
    assert any(r.kind == "no_route" for r in await records(audit))


async def test_malformed_envelope_is_rejected_and_audited(
    app: App, audit: MemoryAuditStore
) -> None:
    add_advisor(app)
    with pytest.raises(EnvelopeError):
        await app.publish(b'{"type": "x", "from": 5}')
    with pytest.raises(EnvelopeError):
        await app.publish(b"not json")
    rejected = [r for r in await records(audit) if r.kind == "rejected"]
    assert len(rejected) == 2


async def test_deadline_in_the_past_fails_without_running_the_agent(app: App) -> None:
    seen = add_advisor(app)
    msg = ask().with_deadline_in(-1)
    reply = await app.request(msg)
    assert reply.type == FAILED
    assert reply.payload["code"] == "deadline_exceeded"
    assert seen == []


async def test_agent_cannot_send_as_someone_else(app: App) -> None:
    @app.agent("impostor", handles="x.y", timeout=1)
    async def impostor(msg: Message, ctx: Context) -> Message:
        return Message(type="x.done", sender="admin-console", to=msg.sender)

    reply = await app.request(ask("x.y"))
    assert reply.type == FAILED
    assert "only send as themselves" in reply.payload["reason"]


async def test_monitor_mode_records_would_deny_and_delivers(audit: MemoryAuditStore) -> None:
    text = policy().document  # reuse the test policy, switched to monitor mode
    assert text["spec"]["mode"] == "enforce"
    monitored = App(
        "monitor",
        policy=policy(
            """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: watch, version: "1"}
spec:
  mode: monitor
  checks:
    - {id: advisors-only, use: rbac, rules: [{types: ["portfolio.advise"], roles: [advisor]}]}
"""
        ),
        audit=audit,
    )
    add_advisor(monitored)
    async with monitored:
        reply = await monitored.request(ask(actor=CUSTOMER))
    assert reply.type == "portfolio.advice"
    decision = next(r for r in await records(audit) if r.kind == "decision")
    assert decision.outcome == "allow"
    assert decision.data["checks"]["advisors-only"] == "would_deny"


async def test_signed_mode_rejects_unsigned_and_accepts_signed(audit: MemoryAuditStore) -> None:
    signer = HmacSigner({"k1": b"k" * 32})
    secured = App("signed", policy=policy(), audit=audit, signer=signer)
    add_advisor(secured)
    async with secured:
        with pytest.raises(SignatureError):
            await secured.request(ask())
        reply = await secured.request(signer.sign(ask()))
    assert reply.type == "portfolio.advice"
    assert reply.signature is not None
    signer.verify(reply)


async def test_sync_durability_commits_before_returning() -> None:
    store = MemoryAuditStore()
    durable = App("durable", policy=policy(), audit=store, durability="sync")
    add_advisor(durable)
    async with durable:
        await durable.request(ask())
        committed = [r async for r in store.records()]
        assert any(r.kind == "delivery" for r in committed)


async def test_close_drains_in_flight_work(audit: MemoryAuditStore) -> None:
    handled: list[int] = []
    busy = App("drain", policy=policy(), audit=audit)

    @busy.agent("slowpoke", handles="work.item", concurrency=2, timeout=2)
    async def slowpoke(msg: Message, ctx: Context) -> None:
        await asyncio.sleep(0.02)
        handled.append(msg.payload["n"])

    await busy.start()
    for n in range(20):
        await busy.publish(ask("work.item", n=n))
    await busy.close()
    assert sorted(handled) == list(range(20))
    verified = await audit.verify()
    assert verified.ok


async def test_audit_chain_verifies_after_a_mixed_run(app: App, audit: MemoryAuditStore) -> None:
    add_advisor(app, sleep=0.5)
    await app.request(ask())
    await app.request(ask(actor=CUSTOMER))
    report = await audit.verify()
    assert report.ok
    assert report.records >= 5


async def test_agent_registered_at_runtime_gets_messages_sent_right_away(app: App) -> None:
    """No window in which a new agent is routable but not yet subscribed (nothing dropped)."""
    add_advisor(app)
    await app.start()

    @app.agent("latecomer", handles="late.job")
    async def latecomer(msg: Message, ctx: Context) -> Message:
        return ctx.reply("late.done", {"ok": True})

    reply = await app.request(ask("late.job"), timeout=2)
    assert reply.type == "late.done"


async def test_agent_not_running_here_yields_failed_not_silence(audit: MemoryAuditStore) -> None:
    """Registered but not started in this process (in-memory bus): the sender hears."""
    partial = App("partial", policy=policy(), audit=audit, default_timeout=2)
    add_advisor(partial)
    await partial.start(agents=["snapshot"])  # the advisor runs elsewhere, or nowhere
    try:
        reply = await partial.request(ask())
    finally:
        await partial.close()
    assert reply.type == FAILED
    assert reply.payload["code"] == "no_subscriber"
    assert any(r.kind == "failure" and r.outcome == "no_subscriber" for r in await records(audit))


async def test_policy_is_evaluated_per_recipient(audit: MemoryAuditStore) -> None:
    """A type routed to two agents: one recipient denied, the other still served."""
    per_recipient = policy(
        """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: per-recipient, version: "1"}
spec:
  roles: [advisor]
  checks:
    - id: archive-needs-advisor
      use: rbac
      when: {recipients: ["archive"]}
      rules: [{types: ["*"], roles: [advisor]}]
"""
    )
    fanout = App("fanout", policy=per_recipient, audit=audit)
    seen: dict[str, list[str]] = {"notifier": [], "archive": []}

    for name in seen:

        @fanout.agent(name, handles="event.created")
        async def record(msg: Message, ctx: Context, _name: str = name) -> None:
            seen[_name].append(msg.id)

    async with fanout:
        report = await fanout.publish(ask("event.created", actor=CUSTOMER))
    assert sorted((d.recipient, d.allowed) for d in report.decisions) == [
        ("archive", False),
        ("notifier", True),
    ]
    assert len(seen["notifier"]) == 1
    assert seen["archive"] == []
    decisions = [r for r in await records(audit) if r.kind == "decision"]
    assert sorted((r.recipient, r.outcome) for r in decisions) == [
        ("archive", "deny"),
        ("notifier", "allow"),
    ]


DECLASSIFY_POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: declassify, version: "1"}
spec:
  roles: [compliance]
  checks:
    - id: public-summaries
      use: declassify
      rules:
        - senders: [summarizer]
          types: ["doc.public_summary"]
          from: pii
          to: public
          require_roles: [compliance]
"""


@pytest.mark.parametrize(
    ("reply_type", "roles", "expected"),
    [
        ("doc.public_summary", ("compliance",), Classification.PUBLIC),  # a rule permits it
        ("doc.summary", ("compliance",), Classification.PII),  # no rule for this type
        ("doc.public_summary", ("advisor",), Classification.PII),  # actor lacks the role
    ],
)
async def test_declassify_is_the_only_way_down(
    audit: MemoryAuditStore, reply_type: str, roles: tuple[str, ...], expected: Classification
) -> None:
    app = App("declassify", policy=policy(DECLASSIFY_POLICY), audit=audit)

    @app.agent("summarizer", handles="doc.summarize", clearance="pii")
    async def summarize(msg: Message, ctx: Context) -> Message:
        return ctx.reply(reply_type, {"s": "short"}, classification="public")

    request = Message(
        type="doc.summarize",
        sender="web",
        classification="pii",
        actor=Actor(subject="c", roles=roles),
    )
    async with app:
        reply = await app.request(request)
    assert reply.type == reply_type
    assert reply.classification is expected
    decision = next(
        r for r in await records(audit) if r.kind == "decision" and r.msg_type == reply_type
    )
    assert decision.data["classification"] == expected.value
    assert ("declassified_from" in decision.data) == (expected is Classification.PUBLIC)
