"""The ``routes`` kind: listed routes allow; a sender with rules gets only its routes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

RULES = """
        spec:
          checks:
            - id: routes
              use: routes
              rules:
                - from: [web, mobile]
                  to: [portfolio_advisor]
                  types: ["portfolio.*"]
                - from: ["portfolio_*"]
                  to: ["*client*"]
                  types: ["*"]
                - from: [web]
                  to: ["tool_*"]
                  types: ["tool.search"]
              default: DEFAULT
"""


def routes(load_spec: LoadText, default: str = "deny") -> Policy:
    return load_spec(RULES.replace("DEFAULT", default))


def agent(name: str) -> AgentCard:
    return AgentCard(name=name, handles="*")


def test_a_listed_route_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = routes(load_spec)
    inp = make_input(
        sender="mobile", type="portfolio.analyze", recipient=agent("portfolio_advisor")
    )
    assert policy.evaluate(inp).allowed
    tool = make_input(sender="web", type="tool.search", recipient=agent("tool_web"))
    assert policy.evaluate(tool).allowed


@pytest.mark.parametrize(
    ("sender", "message_type", "recipient"),
    [
        ("web", "portfolio.analyze", "tool_web"),  # right sender and type, wrong recipient
        ("web", "chat.message", "portfolio_advisor"),  # right sender and recipient, wrong type
        ("web", "tool.delete", "tool_web"),
    ],
)
def test_a_sender_with_rules_gets_only_its_routes(
    load_spec: LoadText, make_input: MakeInput, sender: str, message_type: str, recipient: str
) -> None:
    inp = make_input(sender=sender, type=message_type, recipient=agent(recipient))
    result = routes(load_spec, "allow").evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "route_not_allowed")
    assert result.evidence == {
        "sender": sender,
        "recipient": recipient,
        "type": message_type,
        "rules": [0, 2],
    }


@pytest.mark.parametrize(("default", "allowed"), [("deny", False), ("allow", True)])
def test_a_sender_no_rule_mentions_gets_the_default(
    load_spec: LoadText, make_input: MakeInput, default: str, allowed: bool
) -> None:
    inp = make_input(sender="batch", type="portfolio.analyze", recipient=agent("portfolio_advisor"))
    evaluation = routes(load_spec, default).evaluate(inp)
    assert evaluation.allowed is allowed
    if not allowed:
        assert evaluation.results[0].code == "no_route_rule"


def test_default_is_deny_when_omitted(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = load_spec(RULES.replace("              default: DEFAULT\n", ""))
    assert policy.evaluate(make_input(sender="batch")).results[0].code == "no_route_rule"


def test_without_a_recipient_agent_the_client_pseudo_name_is_matched(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = routes(load_spec)
    assert policy.evaluate(make_input(sender="portfolio_advisor", type="portfolio.result")).allowed
    # A named `to` without a recipient card is matched by that name.
    result = policy.evaluate(make_input(sender="portfolio_advisor", to="ledger")).results[0]
    assert (result.code, result.evidence["recipient"]) == ("route_not_allowed", "ledger")
    # An agent-to-agent hop is not a client reply.
    to_agent = make_input(sender="portfolio_advisor", recipient=agent("ledger"))
    assert not policy.evaluate(to_agent).allowed


@pytest.mark.parametrize(
    ("old", "new", "line", "code", "fragment"),
    [
        ("default: DEFAULT", "default: maybe", 21, "invalid_param", "'allow' or 'deny'"),
        ('types: ["tool.search"]', 'types: ["Tool/Search"]', 20, "invalid_param", "pattern"),
        ("from: [web]\n", "from: []\n", 18, "invalid_param", "at least 1 item"),
        ("to: [portfolio_advisor]", 'to: [""]', 13, "invalid_param", "rules.0.to.0"),
        ("from: [web]\n", "form: [web]\n", 18, "unknown_param", "rules.2.form"),
        ("from: [web]\n", "sender: [web]\n", 18, "unknown_param", "rules.2.sender"),
    ],
)
def test_bad_parameters_are_reported_where_they_are(
    load_spec: LoadText, old: str, new: str, line: int, code: str, fragment: str
) -> None:
    assert old in RULES
    with pytest.raises(PolicyError) as info:
        load_spec(RULES.replace(old, new).replace("DEFAULT", "deny"))
    issues = [(i.line, i.code) for i in info.value.issues]
    assert (line, code) in issues, info.value.issues
    assert any(fragment in i.message for i in info.value.issues), info.value.issues


def test_a_rule_needs_from_to_and_types(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks:
                - id: routes
                  use: routes
                  rules: [{from: [web]}]
            """)
    assert sorted(i.message.rsplit(" ", 1)[-1] for i in info.value.issues) == [
        "'rules.0.to'",
        "'rules.0.types'",
    ]
    assert {(i.line, i.code) for i in info.value.issues} == {(11, "missing_param")}


def test_routes_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["routes"]
    assert {"rules", "default"} <= set(kind.params.model_fields)
    assert kind.summary.endswith(".")
