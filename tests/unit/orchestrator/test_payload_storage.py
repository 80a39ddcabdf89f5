"""What decision records keep of a message (payload storage modes) and shadow-policy records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from govbus.audit import AuditRecord, MemoryAuditStore
from govbus.envelope import Actor, Message
from govbus.errors import ConfigError
from govbus.orchestrator import DENIED, App
from govbus.registry import Context

from .conftest import POLICY, policy, records

ADVISOR = Actor(subject="adv-7", roles=("advisor",), tenant="retail")
EMAIL = "jo.bloggs@example.com"

PII_POLICY = POLICY.replace(
    "  checks:\n",
    "  checks:\n    - id: pii-watch\n      use: pii\n      entities: [email]\n"
    "      mode: monitor\n",
)
STRICT_POLICY = (
    PII_POLICY.replace("name: test-policy", "name: candidate")
    .replace("roles: [advisor]", "roles: [customer]")
    .replace('version: "1"', 'version: "2"')
)


def build(storage: str = "hash", **kwargs: object) -> tuple[App, MemoryAuditStore]:
    audit = MemoryAuditStore()
    app = App(
        "storage",
        policy=policy(PII_POLICY),
        audit=audit,
        audit_payload=storage,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )

    @app.agent("advisor", handles="portfolio.advise")
    async def advisor(msg: Message, ctx: Context) -> Message:
        return ctx.reply("portfolio.advice", {"ok": True})

    return app, audit


async def decide(
    storage: str, metadata: dict[str, str] | None = None, **kwargs: object
) -> list[AuditRecord]:
    app, audit = build(storage, **kwargs)
    async with app:
        reply = await app.request(
            Message(
                type="portfolio.advise",
                sender="web",
                actor=ADVISOR,
                metadata=metadata or {"consent_ref": "c-9"},
                payload={"note": f"write to {EMAIL}", "account": "A-1"},
            )
        )
        assert reply.type == "portfolio.advice"
    return await records(audit)


def first_decision(rows: list[AuditRecord]) -> AuditRecord:
    return next(r for r in rows if r.kind == "decision" and r.recipient == "advisor")


async def test_hash_storage_keeps_the_header_and_the_payload_hash_only() -> None:
    rows = await decide("hash")
    data = first_decision(rows).data
    assert data["payload_storage"] == "hash"
    assert len(data["payload_sha256"]) == 64
    assert "payload" not in data
    envelope = data["envelope"]
    assert envelope["actor"] == {"subject": "adv-7", "roles": ["advisor"], "tenant": "retail"}
    assert envelope["metadata"]["consent_ref"] == "c-9"
    assert envelope["to"] is None and envelope["created_at"]
    assert EMAIL not in json.dumps([r.data for r in rows])


async def test_none_storage_keeps_neither_header_nor_hash() -> None:
    data = first_decision(await decide("none")).data
    assert "envelope" not in data and "payload_sha256" not in data and "payload" not in data


async def test_redacted_storage_keeps_payload_and_metadata_without_personal_data() -> None:
    rows = await decide("redacted", metadata={"consent_ref": "c-9", "contact": EMAIL})
    data = first_decision(rows).data
    assert data["payload"] == {"note": "write to [REDACTED:email]", "account": "A-1"}
    assert data["envelope"]["metadata"]["contact"] == "[REDACTED:email]"
    assert data["envelope"]["metadata"]["consent_ref"] == "c-9"
    assert EMAIL not in json.dumps([r.data for r in rows])
    # The monitoring pii check saw the address (its finding is recorded without the value).
    assert data["checks"]["pii-watch"] == "would_deny"


async def test_full_storage_keeps_the_payload_as_sent() -> None:
    data = first_decision(await decide("full")).data
    assert data["payload"] == {"note": f"write to {EMAIL}", "account": "A-1"}


def test_an_unknown_storage_mode_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="none, hash, redacted, full"):
        App("x", audit="memory://", audit_payload="clear")  # type: ignore[arg-type]


async def test_a_shadow_policy_records_what_it_would_decide_differently() -> None:
    rows = await decide("hash", shadow_policy=policy(STRICT_POLICY))
    (start,) = [r for r in rows if r.kind == "admin" and r.outcome == "start"]
    candidate = policy(STRICT_POLICY)
    assert start.data["shadow_policy"] == {
        "name": "candidate",
        "version": "2",
        "sha256": candidate.sha256,
    }
    shadows = [r for r in rows if r.kind == "shadow"]
    # The advisor's request: enforced allows it, the candidate (customers only) would deny.
    (shadow,) = [s for s in shadows if s.recipient == "advisor"]
    assert shadow.outcome == "differs"
    assert shadow.data["enforced"] == "allow" and shadow.data["shadow"] == "deny"
    assert shadow.data["policy_sha256"] == candidate.sha256
    assert shadow.data["changed"] == [
        {"id": "advisors-only", "enforced": "allow", "shadow": "deny", "code": "missing_role"}
    ]
    # Only enforced decisions count: the advisor still got its answer (checked in decide()).
    assert all(r.data["policy"] == "test-policy" for r in rows if r.kind == "decision")


async def test_a_shadow_policy_that_decides_alike_writes_no_shadow_record() -> None:
    same = PII_POLICY.replace("name: test-policy", "name: same-again")
    rows = await decide("hash", shadow_policy=policy(same))
    assert [r for r in rows if r.kind == "shadow"] == []


async def test_a_denied_message_is_recorded_with_its_header_too() -> None:
    app, audit = build("hash")
    async with app:
        reply = await app.request(
            Message(
                type="portfolio.advise",
                sender="web",
                actor=Actor(subject="c-1", roles=("customer",)),
                payload={"account": "A-1"},
            )
        )
    assert reply.type == DENIED
    (deny,) = [r for r in await records(audit) if r.kind == "decision" and r.outcome == "deny"]
    assert deny.data["envelope"]["actor"]["roles"] == ["customer"]


def test_config_file_sets_payload_storage_and_shadow_policy(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(PII_POLICY)
    (tmp_path / "candidate.yaml").write_text(STRICT_POLICY)
    (tmp_path / "govbus.yaml").write_text(
        "name: configured\npolicy: policy.yaml\nshadow_policy: candidate.yaml\n"
        "audit: {url: 'memory://', payload: redacted}\n"
    )
    app = App.from_config(tmp_path / "govbus.yaml")
    orch = app.orchestrator
    assert orch.payload_storage == "redacted"
    assert orch.shadow is not None and orch.shadow.name == "candidate"
