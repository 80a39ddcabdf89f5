"""The ``consent`` kind: a stated, allowed and (optionally) consented purpose for personal data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from govbus.envelope import Actor
from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.policy.consent import (
    InMemoryConsentStore,
    get_consent_store,
    set_consent_store,
)

from .conftest import NOW

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

ANA = Actor(subject="ana", roles=("customer",))


def consent_policy(load_spec: LoadText, extra: str = "") -> Policy:
    lines = "".join(f"\n              {line}" for line in extra.splitlines() if line)
    return load_spec(f"""
        spec:
          checks:
            - id: purpose
              use: consent{lines}
        """)


@pytest.fixture
def store() -> Iterator[InMemoryConsentStore]:
    """An in-memory ledger installed as the process-wide store for one test."""
    previous = get_consent_store()
    ledger = InMemoryConsentStore()
    set_consent_store(ledger)
    yield ledger
    set_consent_store(previous)


@pytest.fixture
def no_store() -> Iterator[None]:
    previous = get_consent_store()
    set_consent_store(None)
    yield
    set_consent_store(previous)


def test_pii_with_a_purpose_is_allowed(load_spec: LoadText, make_input: MakeInput) -> None:
    inp = make_input(classification="pii", metadata={"purpose": "advice"})
    assert consent_policy(load_spec).evaluate(inp).allowed


@pytest.mark.parametrize("level", ["public", "internal"])
def test_below_applies_at_no_purpose_is_needed(
    load_spec: LoadText, make_input: MakeInput, level: str
) -> None:
    assert consent_policy(load_spec).evaluate(make_input(classification=level)).allowed


@pytest.mark.parametrize("metadata", [{}, {"purpose": ""}, {"purpose": "  "}])
def test_pii_and_above_without_a_purpose_is_denied(
    load_spec: LoadText, make_input: MakeInput, metadata: dict[str, str]
) -> None:
    for level in ("pii", "secret"):
        result = consent_policy(load_spec).evaluate(
            make_input(classification=level, metadata=metadata)
        )
        assert (result.results[0].code, result.results[0].evidence) == (
            "missing_purpose",
            {"classification": level},
        )


def test_applies_at_and_metadata_key_are_configurable(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = consent_policy(load_spec, "applies_at: internal\nmetadata_key: why")
    assert policy.evaluate(make_input(classification="public")).allowed
    internal = make_input(classification="internal", metadata={"purpose": "advice"})
    assert policy.evaluate(internal).results[0].code == "missing_purpose"
    assert policy.evaluate(make_input(classification="internal", metadata={"why": "kyc"})).allowed


def test_a_purpose_not_listed_is_denied_without_echoing_it(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    policy = consent_policy(load_spec, "purposes: [advice, kyc]")
    assert policy.evaluate(make_input(classification="pii", metadata={"purpose": "kyc"})).allowed
    inp = make_input(classification="pii", metadata={"purpose": "marketing ana@example.com"})
    result = policy.evaluate(inp).results[0]
    assert (result.code, result.evidence) == (
        "purpose_not_allowed",
        {"classification": "pii", "allowed": ["advice", "kyc"]},
    )
    assert "ana@example.com" not in repr(result)


def test_ledger_allows_a_consented_purpose(
    load_spec: LoadText, make_input: MakeInput, store: InMemoryConsentStore
) -> None:
    store.grant("ana", "advice")
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    assert consent_policy(load_spec, "ledger: true").evaluate(inp).allowed


def test_ledger_denies_without_consent_for_that_purpose(
    load_spec: LoadText, make_input: MakeInput, store: InMemoryConsentStore
) -> None:
    store.grant("ana", "kyc")
    store.grant("bob", "advice")
    policy = consent_policy(load_spec, "purposes: [advice, kyc]\nledger: true")
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    result = policy.evaluate(inp).results[0]
    assert (result.code, result.evidence) == (
        "no_consent",
        {"classification": "pii", "purpose": "advice"},
    )


def test_ledger_checks_consent_at_the_evaluation_time(
    load_spec: LoadText, make_input: MakeInput, store: InMemoryConsentStore
) -> None:
    """Expired and revoked consents do not count; the check asks about ``inp.now``."""
    policy = consent_policy(load_spec, "ledger: true")
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    store.grant("ana", "advice", expires_at=NOW)
    assert policy.evaluate(inp).results[0].code == "no_consent"
    store.grant("ana", "advice", expires_at=NOW + timedelta(days=1))
    assert policy.evaluate(inp).allowed
    store.revoke("ana", "advice", at=NOW - timedelta(seconds=1))
    assert policy.evaluate(inp).results[0].code == "no_consent"


def test_ledger_denies_a_message_without_an_actor(
    load_spec: LoadText, make_input: MakeInput, store: InMemoryConsentStore
) -> None:
    store.grant("ana", "advice")
    inp = make_input(classification="pii", metadata={"purpose": "advice"})
    result = consent_policy(load_spec, "ledger: true").evaluate(inp).results[0]
    assert result.code == "no_consent"
    assert "purpose" not in result.evidence  # free-form purposes are never echoed


def test_ledger_without_a_store_fails_closed(
    load_spec: LoadText, make_input: MakeInput, no_store: None
) -> None:
    policy = consent_policy(load_spec, "ledger: true")
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    assert policy.evaluate(inp).results[0].code == "consent_store_missing"


def test_the_store_is_looked_up_when_the_check_runs(
    load_spec: LoadText, make_input: MakeInput, no_store: None
) -> None:
    """An app may install its store after the policy is loaded."""
    policy = consent_policy(load_spec, "ledger: true")
    ledger = InMemoryConsentStore()
    ledger.grant("ana", "advice")
    set_consent_store(ledger)
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    assert policy.evaluate(inp).allowed


def test_a_failing_store_is_a_check_error(
    load_spec: LoadText, make_input: MakeInput, store: InMemoryConsentStore
) -> None:
    class Broken(InMemoryConsentStore):
        def has_consent(self, subject: str, purpose: str, now: object) -> bool:
            raise ConnectionError("ledger down")

    set_consent_store(Broken())
    inp = make_input(classification="pii", metadata={"purpose": "advice"}, actor=ANA)
    evaluation = consent_policy(load_spec, "ledger: true").evaluate(inp)
    assert (evaluation.allowed, evaluation.results[0].code) == (False, "check_error")


def test_set_consent_store_refuses_something_that_is_not_a_store() -> None:
    with pytest.raises(TypeError, match="has_consent"):
        set_consent_store(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("applies_at: top", "applies_at"),
        ("purposes: [advice, '']", "purposes.1"),
        ("ledger: sometimes", "ledger"),
        ("metadata_key: ''", "metadata_key"),
        ("purpose: [advice]", "unknown parameter 'purpose'"),
    ],
)
def test_bad_parameters_are_refused_at_their_line(
    load_spec: LoadText, bad: str, fragment: str
) -> None:
    # A valid parameter first, so the reported line is the bad one's, not the check's.
    with pytest.raises(PolicyError) as info:
        consent_policy(load_spec, f"mode: enforce\n{bad}")
    [issue] = info.value.issues
    assert issue.line == 12
    assert issue.code in {"invalid_param", "unknown_param"}
    assert fragment in issue.message


def test_consent_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["consent"]
    assert set(kind.params.model_fields) == {"applies_at", "purposes", "ledger", "metadata_key"}
    assert kind.summary.endswith(".")
