"""The ``tenant_isolation`` kind: tenants never change along a chain or reach foreign agents."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.envelope import Actor, Message
from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

SPEC = """
        spec:
          checks:
            - id: tenants
              use: tenant_isolation
              require_tenant: REQUIRE
"""


def isolation(load_spec: LoadText, require: str = "false") -> Policy:
    return load_spec(SPEC.replace("REQUIRE", require))


def of(tenant: str | None) -> Actor:
    return Actor(subject="u-1", tenant=tenant)


def caused_by(inp: CheckInput, tenant: str | None) -> CheckInput:
    return inp._replace(cause=Message(type="chat.message", sender="web", actor=of(tenant)))


ACME_AGENT = AgentCard(name="acme-advisor", handles="*", tags=["tenant:acme", "tenant:acme-eu"])
SHARED_AGENT = AgentCard(name="shared", handles="*", tags=["team:risk"])


def test_same_tenant_as_the_cause_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = caused_by(make_input(actor=of("acme")), "acme")
    assert isolation(load_spec).evaluate(inp).allowed


def test_a_different_tenant_than_the_cause_is_denied(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = caused_by(make_input(actor=of("globex")), "acme")
    result = isolation(load_spec).evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "tenant_changed")
    assert result.evidence["tenant"] == "globex"
    assert result.evidence["cause_tenant"] == "acme"
    assert "u-1" not in str(result.evidence)


@pytest.mark.parametrize("actor", [None, of(None)])
def test_dropping_the_causes_tenant_is_a_change(
    load_spec: LoadText, make_input: MakeInput, actor: Actor | None
) -> None:
    inp = caused_by(make_input(actor=actor), "acme")
    assert isolation(load_spec).evaluate(inp).results[0].code == "tenant_changed"


def test_a_cause_without_a_tenant_constrains_nothing(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    assert isolation(load_spec).evaluate(caused_by(make_input(actor=of("acme")), None)).allowed


def test_a_tagged_agent_receives_only_its_tenants(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = isolation(load_spec)
    assert policy.evaluate(make_input(actor=of("acme-eu"), recipient=ACME_AGENT)).allowed
    result = policy.evaluate(make_input(actor=of("globex"), recipient=ACME_AGENT)).results[0]
    assert (result.outcome, result.code) == ("deny", "tenant_not_allowed")
    assert result.evidence == {
        "tenant": "globex",
        "allowed": ["acme", "acme-eu"],
        "recipient": "acme-advisor",
    }


def test_a_tagged_agent_refuses_messages_without_a_tenant(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = isolation(load_spec)
    assert policy.evaluate(make_input(recipient=ACME_AGENT)).results[0].code == "tenant_not_allowed"


def test_agents_without_tenant_tags_serve_every_tenant(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = isolation(load_spec)
    assert policy.evaluate(make_input(actor=of("globex"), recipient=SHARED_AGENT)).allowed
    assert policy.evaluate(make_input(actor=of("acme"))).allowed  # a client address
    assert policy.evaluate(make_input(recipient=SHARED_AGENT)).allowed


def test_require_tenant_denies_messages_without_one(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = isolation(load_spec, "true")
    for inp in (make_input(), make_input(actor=of(None))):
        result = policy.evaluate(inp).results[0]
        assert (result.outcome, result.code) == ("deny", "missing_tenant")
    assert policy.evaluate(make_input(actor=of("acme"))).allowed
    assert isolation(load_spec).evaluate(make_input()).allowed


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("require_tenant: REQUIRE", "require_tenant: maybe", "invalid_param"),
        ("require_tenant: REQUIRE", 'require_tenant: "true"', "invalid_param"),
        ("require_tenant: REQUIRE", "require_tenants: true", "unknown_param"),
    ],
)
def test_bad_parameters_are_reported_where_they_are(
    load_spec: LoadText, old: str, new: str, code: str
) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace(old, new))
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (11, code)
    assert "require_tenant" in issue.message


def test_tenant_isolation_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["tenant_isolation"]
    assert "require_tenant" in kind.params.model_fields
    assert kind.summary.endswith(".")
