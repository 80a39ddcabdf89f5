"""The ``residency`` kind: allowed regions per classification, for the message's own region and
its recipient's."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

SPEC = """
        spec:
          checks:
            - id: eu-only
              use: residency
              regions:
                pii: [eu-west, eu-central]
                secret: [eu-central]
              EXTRA
"""


def residency_policy(load_spec: LoadText, extra: str = "") -> Policy:
    return load_spec(SPEC.replace("EXTRA", extra))


def agent(region: str | None) -> AgentCard:
    return AgentCard(name="analyzer", handles="portfolio.*", clearance="secret", region=region)


def test_recipient_and_message_in_allowed_regions_are_allowed(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = residency_policy(load_spec)
    inp = make_input(
        classification="pii", metadata={"residency": "eu-central"}, recipient=agent("eu-west")
    )
    assert policy.evaluate(inp).allowed
    # The message need not state a region unless require_region is on.
    assert policy.evaluate(make_input(classification="pii", recipient=agent("eu-west"))).allowed


@pytest.mark.parametrize("level", ["public", "internal"])
def test_unlisted_classifications_are_unrestricted(
    load_spec: LoadText, make_input: MakeInput, level: str
) -> None:
    inp = make_input(
        classification=level, metadata={"residency": "us-east"}, recipient=agent("us-east")
    )
    assert residency_policy(load_spec).evaluate(inp).allowed


def test_a_recipient_outside_the_allowed_regions_is_denied_without_payload(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(
        classification="pii",
        payload={"email": "ana@example.com"},
        metadata={"residency": "eu-west"},
        recipient=agent("us-east"),
    )
    result = residency_policy(load_spec).evaluate(inp).results[0]
    assert (result.outcome, result.code) == ("deny", "region_not_allowed")
    assert result.evidence == {
        "classification": "pii",
        "recipient": "analyzer",
        "recipient_region": "us-east",
        "message_region": "eu-west",
        "allowed": ["eu-west", "eu-central"],
    }
    assert "ana@example.com" not in repr(result)


def test_the_allowed_regions_depend_on_the_classification(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = residency_policy(load_spec)
    assert policy.evaluate(make_input(classification="pii", recipient=agent("eu-west"))).allowed
    result = policy.evaluate(make_input(classification="secret", recipient=agent("eu-west")))
    assert result.results[0].evidence["allowed"] == ["eu-central"]
    assert not result.allowed


def test_a_message_region_outside_the_allowed_regions_is_denied(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    inp = make_input(
        classification="pii", metadata={"residency": "us-east"}, recipient=agent("eu-west")
    )
    result = residency_policy(load_spec).evaluate(inp).results[0]
    assert (result.code, result.evidence["message_region"]) == ("region_not_allowed", "us-east")
    # Also for a client address, which has no card to compare.
    client = make_input(classification="pii", metadata={"residency": "us-east"})
    assert residency_policy(load_spec).evaluate(client).results[0].code == "region_not_allowed"


def test_a_recipient_that_declares_no_region_is_denied(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    result = residency_policy(load_spec).evaluate(
        make_input(classification="pii", recipient=agent(None))
    )
    assert result.results[0].code == "region_not_allowed"
    assert result.results[0].evidence["recipient_region"] is None


def test_require_region_denies_a_restricted_message_without_one(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = residency_policy(load_spec, "require_region: true")
    result = policy.evaluate(make_input(classification="pii", recipient=agent("eu-west")))
    assert (result.results[0].code, result.results[0].evidence) == (
        "missing_region",
        {"classification": "pii", "allowed": ["eu-west", "eu-central"]},
    )
    # A blank value is no region either; an unrestricted message needs none.
    blank = make_input(classification="pii", metadata={"residency": ""}, recipient=agent("eu-west"))
    assert policy.evaluate(blank).results[0].code == "missing_region"
    assert policy.evaluate(make_input(classification="internal", recipient=agent(None))).allowed


def test_metadata_key_is_configurable(load_spec: LoadText, make_input: MakeInput) -> None:
    policy = residency_policy(load_spec, "metadata_key: data_region")
    inp = make_input(
        classification="pii",
        metadata={"data_region": "us-east", "residency": "eu-west"},
        recipient=agent("eu-west"),
    )
    assert policy.evaluate(inp).results[0].code == "region_not_allowed"


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("require_region: maybe", "require_region"),
        ("metadata_key: ''", "metadata_key"),
        ("region: [eu-west]", "unknown parameter 'region'"),
    ],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, bad: str, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        residency_policy(load_spec, bad)
    [issue] = info.value.issues
    assert issue.line == 14
    assert issue.code in {"invalid_param", "unknown_param"}
    assert fragment in issue.message


@pytest.mark.parametrize(
    ("old", "new", "line", "fragment"),
    [
        ("secret: [eu-central]", "top_secret: [eu-central]", 13, "regions.top_secret"),
        ("secret: [eu-central]", "secret: []", 13, "regions.secret"),
        ("pii: [eu-west, eu-central]", "pii: [eu-west, '']", 12, "regions.pii.1"),
    ],
)
def test_bad_regions_are_refused_at_their_line(
    load_spec: LoadText, old: str, new: str, line: int, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec(SPEC.replace(old, new).replace("EXTRA", ""))
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (line, "invalid_param"), issue
    assert fragment in issue.message


def test_regions_must_restrict_something(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks:
                - {id: eu-only, use: residency, regions: {}}
            """)
    [issue] = info.value.issues
    assert (issue.code, issue.line) == ("invalid_param", 9)
    assert "regions" in issue.message


def test_residency_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["residency"]
    assert set(kind.params.model_fields) == {"regions", "metadata_key", "require_region"}
    assert kind.summary.endswith(".")
