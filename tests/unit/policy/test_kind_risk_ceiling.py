"""The ``risk_ceiling`` kind: roles required by the recipient agent's risk, and a risk cap."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.envelope import Actor
from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

SPEC = """
        spec:
          roles: [customer, advisor, admin]
          checks:
            - id: risky
              use: risk_ceiling
              require_roles:
                high: [advisor, admin]
                critical: [admin]
              EXTRA
"""


def risk_policy(load_spec: LoadText, extra: str = "") -> Policy:
    return load_spec(SPEC.replace("EXTRA", extra))


def agent(risk: str) -> AgentCard:
    return AgentCard(name=f"{risk}-agent", handles="portfolio.*", risk=risk)


def actor(*roles: str) -> Actor:
    return Actor(subject="u-1", roles=roles)


@pytest.mark.parametrize(
    ("risk", "roles"),
    [
        ("low", ()),
        ("medium", ("customer",)),
        ("high", ("customer", "advisor")),
        ("critical", ("admin",)),
    ],
)
def test_an_actor_with_a_required_role_is_allowed(
    load_spec: LoadText, make_input: MakeInput, risk: str, roles: tuple[str, ...]
) -> None:
    inp = make_input(actor=actor(*roles), recipient=agent(risk))
    assert risk_policy(load_spec).evaluate(inp).allowed


def test_an_actor_without_a_required_role_is_denied_with_evidence(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(actor=actor("advisor"), recipient=agent("critical"))
    result = risk_policy(load_spec).evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "missing_role")
    assert result.evidence == {
        "recipient": "critical-agent",
        "risk": "critical",
        "required": ["admin"],
        "held": ["advisor"],
    }


def test_no_actor_is_denied_for_a_listed_level_only(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = risk_policy(load_spec)
    assert policy.evaluate(make_input(recipient=agent("high"))).results[0].code == "no_actor"
    assert policy.evaluate(make_input(recipient=agent("medium"))).allowed


def test_client_addresses_have_no_risk(load_spec: LoadText, make_input: MakeInput) -> None:
    assert risk_policy(load_spec, "max_risk: low").evaluate(make_input()).allowed


def test_a_level_rule_also_covers_higher_unlisted_levels(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    """Forgetting to list ``critical`` does not leave critical agents open."""
    policy = load_spec(SPEC.replace("                critical: [admin]\n", "").replace("EXTRA", ""))
    inp = make_input(actor=actor("customer"), recipient=agent("critical"))
    result = policy.evaluate(inp).results[0]
    assert (result.code, result.evidence["required"]) == ("missing_role", ["advisor", "admin"])
    assert policy.evaluate(make_input(actor=actor("advisor"), recipient=agent("critical"))).allowed


def test_max_risk_denies_recipients_above_it(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = risk_policy(load_spec, "max_risk: high")
    result = policy.evaluate(make_input(actor=actor("admin"), recipient=agent("critical")))
    assert (result.results[0].code, result.results[0].evidence) == (
        "risk_above_ceiling",
        {"recipient": "critical-agent", "risk": "critical", "max_risk": "high"},
    )
    assert policy.evaluate(make_input(actor=actor("admin"), recipient=agent("high"))).allowed


def test_max_risk_alone_is_enough(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = load_spec("""
        spec:
          checks:
            - {id: cap, use: risk_ceiling, max_risk: medium}
        """)
    assert policy.evaluate(make_input(recipient=agent("medium"))).allowed
    assert policy.evaluate(make_input(recipient=agent("high"))).results[0].code == (
        "risk_above_ceiling"
    )


def test_roles_must_be_declared_when_the_policy_declares_roles(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace("critical: [admin]", "critical: [root, admn]").replace("EXTRA", ""))
    assert [(i.line, i.column, i.code) for i in info.value.issues] == [
        (14, 20, "undeclared_role"),
        (14, 26, "undeclared_role"),
    ]
    assert "did you mean" not in info.value.issues[0].message
    assert "did you mean 'admin'?" in info.value.issues[1].message


def test_undeclared_roles_are_fine_when_the_policy_declares_none(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = load_spec(
        SPEC.replace("          roles: [customer, advisor, admin]\n", "").replace("EXTRA", "")
    )
    assert policy.evaluate(make_input(actor=actor("admin"), recipient=agent("critical"))).allowed


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("EXTRA", "max_risk: extreme", 15, "max_risk"),
        ("EXTRA", "max: high", 15, "unknown parameter 'max'"),
        ("critical: [admin]", "severe: [admin]", 14, "require_roles.severe"),
        ("critical: [admin]", "critical: []", 14, "require_roles.critical"),
    ],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, old: str, new: str, line: int, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace(old, new).replace("EXTRA", ""))
    [issue] = info.value.issues
    assert (issue.line, issue.code in {"invalid_param", "unknown_param"}) == (line, True), issue
    assert fragment in issue.message


def test_a_check_with_nothing_to_check_is_refused(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks:
                - {id: cap, use: risk_ceiling}
            """)
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (9, "invalid_param")
    assert "require_roles, max_risk or both" in issue.message


def test_risk_ceiling_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["risk_ceiling"]
    assert set(kind.params.model_fields) == {"require_roles", "max_risk"}
    assert kind.summary.endswith(".")
