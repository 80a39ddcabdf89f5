"""Policy replay on recorded decisions, and shadow reports (govbus.orchestrator.replay).

Records are built by hand to the decision/shadow record format, so every count below is exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from govbus.audit import AuditRecord
from govbus.envelope import Classification
from govbus.orchestrator.replay import (
    Transition,
    record_message,
    replay_policy,
    shadow_report,
)
from govbus.policy import ALLOW, CHECK_KINDS, CheckParams, Policy, parse_policy
from govbus.policy.consent import InMemoryConsentStore, get_consent_store, set_consent_store
from govbus.policy.replayable import KIND_REPLAY, KindReplay
from govbus.registry import AgentCard

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ENFORCED_SHA = "e" * 64
EMAIL = "jo.bloggs@example.com"

CARDS = {
    card.name: card
    for card in (
        AgentCard(
            name="advisor",
            handles="portfolio.advise",
            risk="high",
            clearance="pii",
            region="eu-west",
        ),
        AgentCard(name="analyzer", handles="portfolio.analyze", clearance="internal"),
        AgentCard(name="acme_desk", handles="desk.*", tags=("tenant:acme",)),
    )
}


def candidate(checks: str, *, name: str = "candidate", roles: str = "") -> Policy:
    """A candidate policy with the given checks (YAML list items, indented by four)."""
    return parse_policy(
        "apiVersion: govbus/v1\nkind: Policy\n"
        f'metadata: {{name: {name}, version: "2"}}\n'
        f"spec:\n{roles}  checks:\n{checks}"
    )


RBAC_ADMIN_ONLY = """\
    - id: advisors-only
      use: rbac
      rules: [{types: ["portfolio.advise"], roles: [admin]}]
      default: allow
"""

_seq = iter(range(1, 1_000_000))


def decision(
    message_id: str,
    *,
    outcome: str = "allow",
    checks: Mapping[str, str] | None = None,
    storage: str | None = "hash",
    roles: tuple[str, ...] = ("advisor",),
    tenant: str | None = None,
    actor: bool = True,
    payload: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    recipient: str | None = "advisor",
    sender: str = "web",
    msg_type: str = "portfolio.advise",
    classification: str = "internal",
    causation_id: str | None = None,
    deciding: str | None = None,
    findings: list[dict[str, Any]] | None = None,
    declassified_from: str | None = None,
    ts: datetime = T0,
    node: str = "n1",
) -> AuditRecord:
    """A decision record as the orchestrator writes it (see the module docs of replay.py)."""
    data: dict[str, Any] = {
        "policy": "retail-banking",
        "policy_version": "1",
        "checks": dict(checks if checks is not None else {"advisors-only": "allow"}),
        "classification": classification,
    }
    if deciding is not None:
        data["deciding"] = deciding
    if findings is not None:
        data["findings"] = findings
    if declassified_from is not None:
        data["declassified_from"] = declassified_from
    if storage is not None:
        data["payload_storage"] = storage
    if storage not in (None, "none"):
        data["payload_sha256"] = "a" * 64
        data["envelope"] = {
            "to": None,
            "actor": {"subject": f"s-{message_id}", "roles": list(roles), "tenant": tenant}
            if actor
            else None,
            "metadata": dict(metadata or {}),
            "deadline": None,
            "causation_id": causation_id,
            "created_at": ts.isoformat(),
        }
    if storage in ("redacted", "full"):
        data["payload"] = dict(payload or {})
    return AuditRecord(
        node=node,
        seq=next(_seq),
        ts=ts,
        kind="decision",
        outcome=outcome,
        message_id=message_id,
        correlation_id=message_id,
        msg_type=msg_type,
        sender=sender,
        recipient=recipient,
        policy_sha256=ENFORCED_SHA,
        data=data,
        prev_hash="0" * 64,
        hash="1" * 64,
    )


def record(kind: str, outcome: str, data: Mapping[str, Any], **columns: Any) -> AuditRecord:
    """Any other record (admin, shadow)."""
    return AuditRecord(
        node=columns.pop("node", "n1"),
        seq=next(_seq),
        ts=columns.pop("ts", T0),
        kind=kind,
        outcome=outcome,
        message_id=columns.pop("message_id", None),
        correlation_id=None,
        msg_type=columns.pop("msg_type", None),
        sender=columns.pop("sender", None),
        recipient=columns.pop("recipient", None),
        policy_sha256=ENFORCED_SHA,
        data=dict(data),
        prev_hash="0" * 64,
        hash="1" * 64,
    )


@pytest.fixture
def no_consent_store() -> Iterator[None]:
    saved = get_consent_store()
    set_consent_store(None)
    yield
    set_consent_store(saved)


# -- the classification of kinds ----------------------------------------------------------------


def test_every_registered_kind_is_classified_for_replay() -> None:
    """A kind registered without an entry in KIND_REPLAY would be reported as not replayable;
    for a built-in kind that is a mistake: classify it (and say why) in policy/replayable.py."""
    # Built-in kinds only: other tests register kinds of their own in the same registry.
    builtin = {k.key for k in CHECK_KINDS if k.build.__module__.startswith("govbus.policy.")}
    assert builtin == set(KIND_REPLAY), (
        f"unclassified: {sorted(builtin - set(KIND_REPLAY))}, "
        f"stale: {sorted(set(KIND_REPLAY) - builtin)}"
    )
    facts = {"envelope", "payload", "payload_exact", "cause", "ledger", "state"}
    for key, entry in KIND_REPLAY.items():
        assert entry.reads <= facts, key
        reads_payload = bool(entry.reads & {"payload", "payload_exact"})
        assert bool(entry.redacted) == reads_payload, f"{key}: say what redaction does to it"


def test_payload_readers_are_the_kinds_whose_code_reads_the_payload() -> None:
    payload = {k for k, e in KIND_REPLAY.items() if e.reads & {"payload", "payload_exact"}}
    assert payload == {"explainability", "json_schema", "length", "pii", "prompt_injection"}
    exact = {k for k, e in KIND_REPLAY.items() if "payload_exact" in e.reads}
    assert exact == {"length", "pii"}
    assert KIND_REPLAY["rate_limit"].reads == {"state"}


# -- rebuilding messages ------------------------------------------------------------------------


def test_a_record_rebuilds_into_its_message() -> None:
    rec = decision(
        "m-1",
        storage="full",
        roles=("advisor", "admin"),
        tenant="acme",
        payload={"account": "A-100"},
        metadata={"purpose": "advice"},
        classification="pii",
        causation_id="c-0",
    )
    message = record_message(rec)
    assert (message.id, message.type, message.sender) == ("m-1", "portfolio.advise", "web")
    assert message.classification is Classification.PII
    assert message.actor is not None and message.actor.roles == ("advisor", "admin")
    assert message.actor.tenant == "acme"
    assert message.metadata == {"purpose": "advice"}
    assert message.payload == {"account": "A-100"}
    assert message.causation_id == "c-0"
    assert message.created_at == T0


def test_a_hashed_record_rebuilds_without_payload_and_a_legacy_one_without_header() -> None:
    assert record_message(decision("m-1", storage="hash")).payload == {}
    legacy = record_message(decision("m-2", storage=None))
    assert legacy.actor is None and legacy.metadata == {} and legacy.payload == {}


# -- replay: verdicts and checks ----------------------------------------------------------------


def test_tightened_rbac_turns_recorded_allows_into_denies_and_names_the_check() -> None:
    records = [
        decision("m-1", roles=("advisor",)),
        decision("m-2", roles=("advisor",)),
        decision("m-3", roles=("admin",)),
        decision("m-4", roles=("advisor",), msg_type="portfolio.analyze", recipient="analyzer"),
    ]
    report = replay_policy(records, candidate(RBAC_ADMIN_ONLY), CARDS)
    assert report.decisions == 4
    assert report.verdicts == {
        "allow->allow": 2,
        "allow->deny": 2,
        "deny->allow": 0,
        "deny->deny": 0,
    }
    assert report.changed == 2
    (change,) = report.changes
    assert (change.enforced, change.candidate, change.candidate_check) == (
        "allow",
        "deny",
        "advisors-only",
    )
    assert change.count == 2 and change.examples == ("m-1", "m-2")
    assert change.describe() == "allow -> deny (now decided by advisors-only)"
    rbac = report.check("advisors-only")
    assert rbac.kind == "rbac" and rbac.compared == 4
    assert rbac.transitions == (Transition("allow", "deny", 2, ("m-1", "m-2")),)
    assert rbac.decides_now == 2 and rbac.not_replayed == ()
    assert report.partial == 0 and report.storage == {"hash": 4}
    assert report.enforced[0].policy.sha256 == ENFORCED_SHA
    assert report.enforced[0].decisions == 4


def test_loosened_check_turns_denies_into_allows_naming_the_check_that_decided() -> None:
    records = [
        decision(
            "m-1",
            outcome="deny",
            roles=("customer",),
            checks={"advisors-only": "deny"},
            deciding="advisors-only",
            findings=[{"id": "advisors-only", "kind": "rbac", "outcome": "deny"}],
        ),
        decision("m-2", roles=("advisor",)),
    ]
    loose = candidate(
        "    - id: advisors-only\n      use: rbac\n"
        '      rules: [{types: ["*"], roles: [advisor, customer]}]\n'
    )
    report = replay_policy(records, loose, CARDS)
    assert report.verdicts["deny->allow"] == 1 and report.changed == 1
    (change,) = report.changes
    assert change.describe() == "deny -> allow (was decided by advisors-only)"
    rbac = report.check("advisors-only")
    assert rbac.transitions == (Transition("deny", "allow", 1, ("m-1",)),)
    assert rbac.no_longer_decides == 1 and rbac.decides_now == 0


def test_a_denial_decided_by_another_check_is_a_change_too() -> None:
    rec = decision(
        "m-1",
        outcome="deny",
        roles=("customer",),
        checks={"advisors-only": "deny", "trace": "deny"},
        deciding="trace",
    )
    both = RBAC_ADMIN_ONLY + "    - {id: trace, use: required_metadata, keys: [traceparent]}\n"
    report = replay_policy([rec], candidate(both), CARDS)
    assert report.verdicts["deny->deny"] == 1 and report.changed == 0
    (change,) = report.changes
    assert change.describe() == "deny -> deny (decided by advisors-only instead of trace)"
    assert report.check("advisors-only").decides_now == 1
    assert report.check("trace").no_longer_decides == 1


def test_a_removed_check_shows_what_it_used_to_deny() -> None:
    rec = decision(
        "m-1",
        outcome="deny",
        checks={"advisors-only": "allow", "size": "deny"},
        deciding="size",
        findings=[{"id": "size", "kind": "length", "outcome": "deny", "code": "too_large"}],
    )
    report = replay_policy([rec], candidate(RBAC_ADMIN_ONLY.replace("admin", "advisor")), CARDS)
    assert report.verdicts["deny->allow"] == 1
    size = report.check("size")
    assert not size.in_candidate and size.kind == "length"
    assert size.transitions == (Transition("deny", None, 1, ("m-1",)),)
    assert size.transitions[0].label == "deny->absent"


def test_monitor_mode_changes_outcomes_but_not_verdicts() -> None:
    monitored = RBAC_ADMIN_ONLY + "      mode: monitor\n"
    report = replay_policy([decision("m-1")], candidate(monitored), CARDS)
    assert report.changed == 0 and report.changes == ()
    assert report.check("advisors-only").transitions == (
        Transition("allow", "would_deny", 1, ("m-1",)),
    )


# -- replay: what cannot be replayed ------------------------------------------------------------

PII = "    - {id: personal-data, use: pii, entities: [email]}\n"


def test_pii_on_a_hashed_payload_is_reported_not_replayable_and_left_out() -> None:
    rec = decision(
        "m-1", storage="hash", checks={"advisors-only": "allow", "personal-data": "allow"}
    )
    report = replay_policy([rec], candidate(RBAC_ADMIN_ONLY + PII), CARDS)
    pii = report.check("personal-data")
    assert pii.compared == 0 and pii.transitions == ()
    (why,) = pii.not_replayed
    assert why.what == "not replayable on hashed payloads (it reads the payload)"
    assert (why.count, why.examples) == (1, ("m-1",))
    assert report.partial == 1
    assert any("compared on the remaining checks only" in n for n in report.notes)
    # The rest was still compared: the tightened rbac denies.
    assert report.verdicts["allow->deny"] == 1


def test_a_full_payload_replays_pii() -> None:
    rec = decision(
        "m-1",
        storage="full",
        payload={"note": f"write to {EMAIL}"},
        checks={"advisors-only": "allow"},
    )
    report = replay_policy([rec], candidate(PII), CARDS)
    assert report.partial == 0
    assert report.verdicts["allow->deny"] == 1
    (change,) = report.changes
    assert change.candidate_check == "personal-data"
    assert report.check("personal-data").transitions == (Transition(None, "deny", 1, ("m-1",)),)
    # Evidence and payload text never reach the report.
    assert EMAIL not in json.dumps(report.as_dict())


def test_pii_on_a_redacted_payload_is_not_comparable_and_says_why() -> None:
    rec = decision(
        "m-1",
        storage="redacted",
        payload={"note": "write to [REDACTED:email]", "account": "A-1"},
        checks={"advisors-only": "allow"},
    )
    schema = (
        "    - id: shape\n      use: json_schema\n"
        "      schemas: {portfolio.advise: {type: object, required: [account]}}\n"
    )
    report = replay_policy([rec], candidate(PII + schema), CARDS)
    (why,) = report.check("personal-data").not_replayed
    assert why.what.startswith("not replayable on redacted payloads")
    assert "redaction markers, not the personal data" in why.what
    # json_schema is replayed on the redacted payload, with its caveat in the notes.
    assert report.check("shape").compared == 1
    assert any(n.startswith("shape (json_schema) was replayed on 1 redacted") for n in report.notes)


def test_rate_limit_is_never_replayed() -> None:
    rec = decision("m-1", storage="full", payload={"account": "A-1"})
    rate = "    - {id: advice-rate, use: rate_limit, rate: 1, burst: 1}\n"
    report = replay_policy([rec, decision("m-2", storage="full")], candidate(rate), CARDS)
    (why,) = report.check("advice-rate").not_replayed
    assert why.count == 2 and "no audit record holds" in why.what


def test_a_recorded_denial_by_an_unreplayable_check_is_compared_on_the_rest() -> None:
    rec = decision(
        "m-1",
        outcome="deny",
        checks={"advisors-only": "allow", "personal-data": "deny"},
        deciding="personal-data",
    )
    report = replay_policy(
        [rec], candidate(RBAC_ADMIN_ONLY.replace("admin", "advisor") + PII), CARDS
    )
    assert report.masked == 1
    assert report.verdicts == {
        "allow->allow": 1,
        "allow->deny": 0,
        "deny->allow": 0,
        "deny->deny": 0,
    }
    assert report.changes == ()


def test_a_recorded_denial_by_an_unreplayable_check_stays_a_denial_if_the_rest_denies() -> None:
    """The size check (length) cannot be replayed on a hashed payload, but the candidate's
    rbac denies too: certainly deny -> deny, and no claim about which check decides."""
    rec = decision(
        "m-1",
        outcome="deny",
        checks={"size": "deny", "advisors-only": "allow"},
        deciding="size",
    )
    size = "    - {id: size, use: length, max_bytes: 10}\n"
    report = replay_policy([rec], candidate(size + RBAC_ADMIN_ONLY), CARDS)
    assert report.verdicts["deny->deny"] == 1 and report.masked == 0
    assert report.changes == ()
    assert report.check("advisors-only").transitions == (Transition("allow", "deny", 1, ("m-1",)),)


def test_records_without_an_envelope_replay_only_what_the_columns_hold() -> None:
    ceiling = "    - {id: clearance, use: classification_ceiling}\n"
    rec = decision("m-1", storage=None, classification="pii", recipient="analyzer")
    report = replay_policy([rec], candidate(RBAC_ADMIN_ONLY + ceiling), CARDS)
    (why,) = report.check("advisors-only").not_replayed
    assert why.what.startswith("not replayable without the envelope")
    # classification_ceiling reads the classification column and the recipient's card.
    assert report.check("clearance").transitions == (Transition(None, "deny", 1, ("m-1",)),)
    assert report.storage == {"none": 1}


def test_a_custom_kind_is_not_replayed_unless_classified() -> None:
    kinds = CHECK_KINDS.copy()

    @kinds.register("always_deny", params=CheckParams, summary="Deny everything.")
    def build(params: CheckParams, ctx: object) -> Any:
        return lambda inp: ALLOW

    policy = parse_policy(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: c, version: '1'}\n"
        "spec:\n  checks:\n    - {id: custom, use: always_deny}\n",
        kinds=kinds,
    )
    report = replay_policy([decision("m-1")], policy, CARDS)
    (why,) = report.check("custom").not_replayed
    assert "has no replay classification" in why.what
    extended = {**KIND_REPLAY, "always_deny": KindReplay(frozenset())}
    report = replay_policy([decision("m-1")], policy, CARDS, kinds=extended)
    assert report.check("custom").compared == 1


def test_consent_with_a_ledger_needs_a_store_in_this_process(no_consent_store: None) -> None:
    ledger = "    - {id: purpose, use: consent, ledger: true}\n"
    rec = decision("m-1", classification="pii", metadata={"purpose": "advice"})
    report = replay_policy([rec], candidate(ledger), CARDS)
    (why,) = report.check("purpose").not_replayed
    assert "no consent store is configured" in why.what

    store = InMemoryConsentStore()
    store.grant("s-m-1", "advice", granted_at=T0 - timedelta(days=1))
    store.grant("s-m-2", "advice", granted_at=T0 + timedelta(days=1))  # after the decision
    set_consent_store(store)
    late = decision("m-2", classification="pii", metadata={"purpose": "advice"})
    report = replay_policy([rec, late], candidate(ledger), CARDS)
    assert report.check("purpose").transitions == (Transition(None, "deny", 1, ("m-2",)),)
    assert any("consent ledger as it is now" in n for n in report.notes)


# -- replay: causes -----------------------------------------------------------------------------

TENANTS = "    - {id: tenants, use: tenant_isolation}\n"


def output(message_id: str, cause: str, tenant: str | None, **kwargs: Any) -> AuditRecord:
    """An agent's output (sender is a registered agent) caused by ``cause``."""
    return decision(
        message_id,
        sender="advisor",
        msg_type="portfolio.analyze",
        recipient="analyzer",
        tenant=tenant,
        causation_id=cause,
        checks={},
        **kwargs,
    )


def test_tenant_isolation_reads_the_cause_from_the_records() -> None:
    records = [
        decision("c-1", tenant="acme"),
        output("o-1", "c-1", tenant="globex"),  # the tenant changed along the chain
        output("o-2", "c-1", tenant="acme"),
    ]
    report = replay_policy(records, candidate(TENANTS), CARDS)
    tenants = report.check("tenants")
    assert tenants.transitions == (Transition(None, "deny", 1, ("o-1",)),)
    assert tenants.compared == 3 and tenants.not_replayed == ()


def test_a_cause_read_later_is_still_found() -> None:
    """Records come node by node: the cause may be on a node read after its output."""
    records = [
        output("o-1", "c-1", tenant="globex", node="n1"),
        decision("c-1", tenant="acme", node="n2"),
    ]
    report = replay_policy(records, candidate(TENANTS), CARDS)
    assert report.check("tenants").transitions == (Transition(None, "deny", 1, ("o-1",)),)


def test_without_the_cause_record_tenant_isolation_is_not_replayed() -> None:
    report = replay_policy([output("o-1", "c-9", tenant="globex")], candidate(TENANTS), CARDS)
    (why,) = report.check("tenants").not_replayed
    assert "caused it" in why.what and why.examples == ("o-1",)


def test_a_lowering_the_candidate_does_not_permit_is_raised_back_before_the_checks() -> None:
    declassify = (
        "    - id: notes\n      use: declassify\n      rules:\n"
        "        - {senders: [advisor], types: [portfolio.summary], from: pii, to: internal}\n"
        "    - {id: clearance, use: classification_ceiling}\n"
    )
    lowered = output("o-1", "c-1", tenant=None, classification="internal", declassified_from="pii")
    report = replay_policy([lowered], candidate(declassify), CARDS)
    # Not a portfolio.summary: the candidate raises it to pii, above the analyzer's clearance.
    assert report.raised is not None and report.raised.examples == ("o-1",)
    assert report.check("clearance").transitions == (Transition(None, "deny", 1, ("o-1",)),)
    assert report.check("notes").transitions == ()

    permitted = declassify.replace("portfolio.summary", "portfolio.analyze")
    report = replay_policy([lowered], candidate(permitted), CARDS)
    assert report.raised is None and report.changed == 0


# -- replay: window, limit, bad records ---------------------------------------------------------


def test_the_window_and_the_limit_select_decisions() -> None:
    records = [decision(f"m-{i}", ts=T0 + timedelta(hours=i)) for i in range(6)]
    policy = candidate(RBAC_ADMIN_ONLY)
    report = replay_policy(
        records, policy, CARDS, since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=4)
    )
    assert report.decisions == 3 and not report.truncated
    assert (report.first, report.last) == (T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    limited = replay_policy(records, policy, CARDS, limit=2)
    assert limited.decisions == 2 and limited.truncated


def test_a_record_that_is_no_valid_message_is_counted_not_fatal() -> None:
    bad = decision("m-1", msg_type="Not A Type")
    report = replay_policy([bad, decision("m-2")], candidate(RBAC_ADMIN_ONLY), CARDS)
    assert report.decisions == 1
    (why,) = report.unreadable
    assert why.what.startswith("the record does not describe a valid message: type")


def test_unknown_recipients_are_counted_as_client_addresses() -> None:
    report = replay_policy(
        [decision("m-1", recipient="web"), decision("m-2", recipient="web")],
        candidate(RBAC_ADMIN_ONLY),
        CARDS,
    )
    assert report.unknown_recipients == {"web": 2}


def test_the_report_is_json_ready() -> None:
    report = replay_policy([decision("m-1")], candidate(RBAC_ADMIN_ONLY + PII), CARDS)
    data = json.loads(json.dumps(report.as_dict()))
    assert data["verdicts"]["allow->deny"] == 1
    assert data["candidate"]["name"] == "candidate"
    assert data["checks"][0]["transitions"][0] == {
        "before": "allow",
        "after": "deny",
        "count": 1,
        "examples": ["m-1"],
    }
    assert data["checks"][1]["not_replayed"][0]["count"] == 1


# -- shadow reports -----------------------------------------------------------------------------


def shadow(
    message_id: str,
    sha: str,
    enforced: str,
    shadowed: str,
    changed: list[dict[str, Any]],
    **kw: Any,
) -> AuditRecord:
    return record(
        "shadow",
        "differs",
        {
            "policy": "candidate",
            "policy_version": "2",
            "policy_sha256": sha,
            "enforced": enforced,
            "shadow": shadowed,
            "checks": {c["id"]: c["shadow"] for c in changed},
            "changed": changed,
        },
        message_id=message_id,
        **kw,
    )


def start(sha: str | None, node: str = "n1") -> AuditRecord:
    data: dict[str, Any] = {"agents": ["advisor"]}
    if sha is not None:
        data["shadow_policy"] = {"name": "candidate", "version": "2", "sha256": sha}
    return record("admin", "start", data, node=node)


def test_shadow_report_counts_changes_per_check_over_the_decisions_compared() -> None:
    policy = candidate(RBAC_ADMIN_ONLY)
    sha = policy.sha256
    deny = {"id": "advisors-only", "enforced": "allow", "shadow": "deny", "code": "missing_role"}
    watch = {"id": "watch", "enforced": "allow", "shadow": "would_deny", "code": "pii_detected"}
    records = [
        start(sha),
        *[decision(f"m-{i}") for i in range(5)],
        shadow("m-0", sha, "allow", "deny", [deny]),
        shadow("m-1", sha, "allow", "deny", [deny, watch]),
        shadow("m-2", sha, "allow", "allow", [watch]),
        record("admin", "stop", {}),
        *[decision(f"late-{i}") for i in range(3)],  # after stop: not shadowed
        start(None, node="n2"),
        *[decision(f"other-{i}", node="n2") for i in range(4)],  # n2 never shadowed
    ]
    report = shadow_report(records, candidate=policy)
    (entry,) = report.candidates
    assert entry.policy.sha256 == sha and entry.compared == 5 and entry.differing == 3
    assert entry.verdicts == {"allow->deny": 2, "deny->allow": 0, "same": 1}
    assert entry.nodes == ("n1",)
    rbac = entry.check("advisors-only")
    assert rbac.changed == 2 and rbac.allow_to_deny == 2 and rbac.deny_to_allow == 0
    assert rbac.transitions == (
        Transition("allow", "deny", 2, ("m-0", "m-1"), {"missing_role": 2}),
    )
    watch_entry = entry.check("watch")
    assert watch_entry.changed == 2 and watch_entry.allow_to_deny == 0
    assert watch_entry.transitions[0].label == "allow->would_deny"
    assert json.loads(json.dumps(report.as_dict()))["candidates"][0]["compared"] == 5


def test_shadow_report_filters_by_candidate_and_window() -> None:
    records = [
        start("a" * 64),
        decision("m-1", ts=T0),
        shadow("m-1", "a" * 64, "deny", "allow", [], ts=T0),
        decision("m-2", ts=T0 + timedelta(days=1)),
        shadow("m-2", "a" * 64, "allow", "deny", [], ts=T0 + timedelta(days=1)),
    ]
    assert shadow_report(records, candidate="b" * 64).candidates == ()
    (entry,) = shadow_report(records, since=T0 + timedelta(hours=1)).candidates
    assert entry.compared == 1 and entry.verdicts["allow->deny"] == 1
    assert entry.verdicts["deny->allow"] == 0


def test_shadow_records_without_their_start_record_have_an_unknown_denominator() -> None:
    (entry,) = shadow_report([shadow("m-1", "a" * 64, "allow", "deny", [])]).candidates
    assert entry.compared is None and entry.differing == 1


# -- replay agrees with shadow mode on live traffic ---------------------------------------------


async def test_replay_on_full_payloads_finds_what_shadow_mode_found_live() -> None:
    """The same candidate, once shadowing live traffic and once replayed on its records: with
    full payload storage both see the same changed decisions; with hashed payloads replay
    says the pii check cannot be replayed instead of guessing."""
    from govbus.audit import MemoryAuditStore
    from govbus.envelope import Actor, Message
    from govbus.orchestrator import App
    from govbus.registry import Context

    from .conftest import POLICY, policy, records

    shadowed = POLICY.replace("name: test-policy", "name: candidate") + (
        "    - {id: personal-data, use: pii, entities: [email]}\n"
    )
    advisor = Actor(subject="adv-7", roles=("advisor",), tenant="retail")
    customer = Actor(subject="c-1", roles=("customer",), tenant="retail")
    sent = [
        (advisor, {"account": "A-1", "note": f"mail {EMAIL}"}),  # the candidate denies (pii)
        (advisor, {"account": "A-2"}),
        (customer, {"account": "A-3"}),  # both deny (rbac)
    ]
    for storage in ("full", "hash"):
        audit = MemoryAuditStore()
        app = App(
            "live",
            policy=policy(),
            audit=audit,
            audit_payload=storage,  # type: ignore[arg-type]
            shadow_policy=policy(shadowed),
        )

        @app.agent("advisor", handles="portfolio.advise")
        async def advise(msg: Message, ctx: Context) -> Message:
            return ctx.reply("portfolio.advice", {"ok": True})

        async with app:
            for actor, payload in sent:
                await app.request(
                    Message(type="portfolio.advise", sender="web", actor=actor, payload=payload)
                )
        rows = await records(audit)
        cards = {card.name: card for card in app.registry.cards}
        (live,) = shadow_report(rows).candidates
        replayed = replay_policy(rows, policy(shadowed), cards)
        decisions = sum(1 for r in rows if r.kind == "decision")
        assert live.compared == decisions == replayed.decisions
        assert live.verdicts["allow->deny"] == 1
        flip = live.changes[0].examples
        if storage == "full":
            assert replayed.verdicts["allow->deny"] == 1 and replayed.partial == 0
            assert replayed.changes[0].examples == flip
            assert replayed.changes[0].candidate_check == "personal-data"
        else:
            assert replayed.changed == 0 and replayed.partial == decisions
            (why,) = replayed.check("personal-data").not_replayed
            assert why.what == "not replayable on hashed payloads (it reads the payload)"
