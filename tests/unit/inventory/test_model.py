"""The inventory document, statuses and recent activity, built from a live app (no HTTP)."""

from __future__ import annotations

from pathlib import Path

import jsonschema

from govbus import Message
from govbus.inventory import Activity, build_inventory, openapi_document, policy_document
from govbus.inventory.model import agent_status, find_agent
from govbus.orchestrator import AgentStats
from govbus.resilience import CircuitBreaker
from tests.unit.inventory.support import CUSTOMER, advice, make_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for one schema of the OpenAPI document (its $refs resolved)."""
    doc = openapi_document()
    schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_every_registered_agent_is_listed_with_its_card(tmp_path: Path) -> None:
    doc = build_inventory(make_app(tmp_path))
    assert [a["name"] for a in doc["agents"]] == ["advisor", "flaky", "snapshot"]
    advisor = find_agent(doc, "advisor")
    assert advisor is not None
    assert advisor["owner"] == "Advisory team" and advisor["risk"] == "high"
    assert advisor["clearance"] == "pii" and advisor["region"] == "eu-west"
    assert advisor["model"] == {"provider": "openai", "name": "gpt-4o"}
    assert advisor["deterministic"] is False and advisor["fallback"] == "snapshot"
    assert advisor["handles"] == ["advice.get"] and advisor["status"] == "healthy"
    snapshot = find_agent(doc, "snapshot")
    assert snapshot is not None and snapshot["model"] is None and snapshot["deterministic"]
    assert doc["app"]["name"] == "inventory-test" and doc["app"]["state"] == "new"


def test_the_policy_shows_its_hash_and_approval(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    policy = build_inventory(app)["policy"]
    assert policy["sha256"] == app.policy.sha256
    assert policy["approved"] is True
    assert (policy["approved_by"], policy["approved_on"]) == ("Chief Risk Officer", "2026-11-21")


def test_a_policy_without_approval_record_is_shown_unapproved(tmp_path: Path) -> None:
    policy = build_inventory(make_app(tmp_path, approve=False))["policy"]
    assert policy["approved"] is False and policy["approved_by"] is None


def test_an_unreadable_approvals_file_is_unapproved_and_says_why(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    (tmp_path / "approvals.yaml").write_text("approvals: [{name: x}]\n")
    policy = build_inventory(app)["policy"]
    assert policy["approved"] is False
    assert "approvals.yaml" in policy["approval_error"]


def test_policy_document_has_checks_and_a_plain_language_summary(tmp_path: Path) -> None:
    doc = policy_document(make_app(tmp_path))
    assert [(c["id"], c["kind"], c["mode"]) for c in doc["checks"]] == [
        ("advisors-only", "rbac", "enforce")
    ]
    assert doc["summary"].startswith("# Policy inventory-test version 3")
    assert "approved by Chief Risk Officer" in doc["summary"]
    validator("Policy").validate(doc)


async def test_status_precedence_paused_then_circuit_open_then_degraded(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = FakeClock()
    activity = Activity(app, window=60.0, clock=clock)
    async with app:
        activity.observe()
        orch = app.orchestrator
        assert agent_status(app, "advisor", activity) == "healthy"

        orch.stats["advisor"] = AgentStats(fallbacks=1)
        activity.observe()
        assert agent_status(app, "advisor", activity) == "degraded"

        breaker = orch.breakers["advisor"] = CircuitBreaker(1, 30.0, clock=clock)
        breaker.acquire().record_failure()
        assert agent_status(app, "advisor", activity) == "circuit_open"

        app.pause("advisor", by="ops", reason="drill")
        assert agent_status(app, "advisor", activity) == "paused"
        app.resume("advisor", by="ops")
        assert agent_status(app, "advisor", activity) == "circuit_open"

        clock.now += 61.0  # the fallback is no longer recent, but the breaker now probes:
        assert orch.breaker_states()["advisor"] == "half_open"
        assert agent_status(app, "advisor", activity) == "degraded"  # half-open is degraded
        breaker.acquire().record_success()
        assert agent_status(app, "advisor", activity) == "healthy"
        assert agent_status(app, "snapshot", activity) == "healthy"


async def test_a_fallback_in_real_traffic_degrades_the_agent_for_one_window(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    clock = FakeClock()
    activity = Activity(app, window=300.0, clock=clock)
    async with app:
        activity.observe()
        reply = await app.request(advice(fail=True))
        assert reply.payload == {"by": "snapshot"}  # the fallback answered
        clock.now += 10.0
        doc = build_inventory(app, activity)
        advisor = find_agent(doc, "advisor")
        assert advisor is not None and advisor["status"] == "degraded"
        assert advisor["counters"]["fallbacks"] == 1
        assert doc["recent"]["fallbacks_by_agent"] == {"advisor": 1}
        clock.now += 300.0
        doc = build_inventory(app, activity)
        advisor = find_agent(doc, "advisor")
        assert advisor is not None and advisor["status"] == "healthy"
        assert doc["recent"]["fallbacks_by_agent"] == {}
        assert advisor["counters"]["fallbacks"] == 1  # totals stay


async def test_recent_counts_cover_the_window_only(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    clock = FakeClock()
    activity = Activity(app, window=60.0, resolution=5.0, clock=clock)
    async with app:
        activity.observe()
        denied = await app.request(advice(actor=CUSTOMER))
        assert denied.type == "govbus.denied"
        for _ in range(12):  # samples every 5 s for a minute
            clock.now += 5.0
            activity.observe()
        await app.request(advice(actor=CUSTOMER))
        await app.request(Message(type="flaky.run", sender="web"))
        clock.now += 6.0
        recent = activity.recent()
        # The first denial came before the sample at +5 s, now over a minute old (counts are
        # exact to within one resolution: the baseline is the newest sample a window old).
        assert recent["denied_by_check"] == {"advisors-only": 1}
        assert recent["failures_by_agent"] == {"flaky": 1}
        assert recent["observed_seconds"] == 60.0
        totals = app.orchestrator.counters
        assert totals["denied:advisors-only"] == 2


async def test_the_document_matches_the_openapi_schema(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    async with app:
        await app.request(advice(fail=True))
        app.pause("snapshot", by="ops", reason="bad answers", mode="hold")
        doc = build_inventory(app)
    validator("Inventory").validate(doc)
    snapshot = find_agent(doc, "snapshot")
    assert snapshot is not None and snapshot["paused"] is not None
    assert snapshot["paused"]["by"] == "ops" and snapshot["paused"]["mode"] == "hold"
