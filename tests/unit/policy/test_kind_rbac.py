"""The ``rbac`` kind: the first matching rule decides which actor roles may send a type."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.envelope import Actor
from govbus.policy import CheckInput, Policy, PolicyError

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

RULES = """
        spec:
          roles: [customer, advisor, admin]
          checks:
            - id: access
              use: rbac
              rules:
                - types: ["portfolio.advise"]
                  roles: [advisor, admin]
                - types: ["admin.*"]
                  senders: ["console"]
                  roles: [admin]
                - types: ["portfolio.*", "admin.*"]
                  roles: [customer, advisor, admin]
              default: DEFAULT
"""


def rbac(load_spec: LoadText, default: str = "deny") -> Policy:
    return load_spec(RULES.replace("DEFAULT", default))


def actor(*roles: str) -> Actor:
    return Actor(subject="u-1", roles=roles)


def test_actor_with_a_listed_role_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(type="portfolio.advise", actor=actor("customer", "advisor"))
    assert rbac(load_spec).evaluate(inp).allowed


def test_actor_without_a_listed_role_is_denied_with_evidence(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(type="portfolio.advise", actor=actor("customer"))
    result = rbac(load_spec).evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "missing_role")
    assert result.evidence == {"required": ["advisor", "admin"], "held": ["customer"]}


def test_no_actor_is_denied(load_spec: LoadText, make_input: MakeInput) -> None:
    result = rbac(load_spec).evaluate(make_input(type="portfolio.advise")).results[0]
    assert (result.outcome, result.code) == ("deny", "no_actor")


def test_the_first_matching_rule_decides(load_spec: LoadText, make_input: MakeInput) -> None:
    # A customer may analyze (third rule) but not advise (first rule matches first).
    policy = rbac(load_spec)
    assert policy.evaluate(make_input(type="portfolio.analyze", actor=actor("customer"))).allowed
    assert not policy.evaluate(make_input(type="portfolio.advise", actor=actor("customer"))).allowed


def test_a_rule_with_senders_only_matches_those_senders(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = rbac(load_spec)
    from_console = make_input(type="admin.reset", sender="console", actor=actor("customer"))
    assert policy.evaluate(from_console).results[0].code == "missing_role"
    # From elsewhere the senders rule does not match, so the broader third rule decides.
    from_web = make_input(type="admin.reset", sender="web", actor=actor("customer"))
    assert policy.evaluate(from_web).allowed


@pytest.mark.parametrize(("default", "allowed"), [("deny", False), ("allow", True)])
def test_no_matching_rule_falls_back_to_default(
    load_spec: LoadText, make_input: MakeInput, default: str, allowed: bool
) -> None:
    evaluation = rbac(load_spec, default).evaluate(make_input(type="chat.message"))
    assert evaluation.allowed is allowed
    if not allowed:
        assert evaluation.results[0].code == "no_rule"


def test_default_is_deny_when_omitted(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = load_spec(RULES.replace("              default: DEFAULT\n", ""))
    assert policy.evaluate(make_input(type="chat.message")).results[0].code == "no_rule"


def test_roles_must_be_declared_when_the_policy_declares_roles(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(RULES.replace("roles: [admin]", "roles: [root, admn]").replace("DEFAULT", "deny"))
    assert [(i.line, i.column, i.code) for i in info.value.issues] == [
        (17, 19, "undeclared_role"),
        (17, 25, "undeclared_role"),
    ]
    assert "did you mean" not in info.value.issues[0].message
    assert "did you mean 'admin'?" in info.value.issues[1].message


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("default: DEFAULT", "default: maybe", "'allow' or 'deny'"),
        ('types: ["portfolio.advise"]', 'types: ["Portfolio/Advise"]', "invalid type pattern"),
        ('types: ["portfolio.advise"]', "types: []", "at least 1 item"),
        ("roles: [advisor, admin]", "roles: []", "at least 1 item"),
        ('senders: ["console"]', "senders: []", "at least 1 item"),
        ('senders: ["console"]', "sender: [console]", "unknown parameter 'rules.1.sender'"),
    ],
)
def test_bad_parameters_are_reported_where_they_are(
    load_spec: LoadText, old: str, new: str, fragment: str
) -> None:
    assert old in RULES
    with pytest.raises(PolicyError) as info:
        load_spec(RULES.replace(old, new).replace("DEFAULT", "deny"))
    [issue] = info.value.issues
    assert fragment in issue.message, issue
    assert issue.code in {"invalid_param", "unknown_param"}


def test_rules_are_required(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks: [{id: access, use: rbac, default: allow}]
            """)
    assert info.value.issues[0].code == "missing_param"
