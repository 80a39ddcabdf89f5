"""The ``rate_limit`` kind: a token bucket per key, driven by the evaluation's clock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from govbus.envelope import Actor
from govbus.policy import CHECK_KINDS, CheckInput, Policy, PolicyError
from govbus.registry.card import AgentCard

MakeInput = Callable[..., CheckInput]
LoadText = Callable[[str], Policy]

SPEC = """
        spec:
          checks:
            - id: rate
              use: rate_limit
              rate: 1
              burst: 3
              per: actor
              types: ["portfolio.*"]
              max_keys: 1000
"""


def limiter(load_spec: LoadText, **changes: object) -> Policy:
    text = SPEC
    for key, value in changes.items():
        start = text.index(f"{key}: ")
        end = text.index("\n", start)
        text = text[:start] + f"{key}: {value}" + text[end:]
    return load_spec(text)


class Sender:
    """Fresh messages from one actor, evaluated at ``t`` seconds after the fixture clock."""

    def __init__(self, policy: Policy, make_input: MakeInput) -> None:
        self.policy = policy
        self.make_input = make_input

    def send(self, t: float = 0.0, subject: str | None = "u-1", **fields: object) -> CheckInput:
        if subject is not None:
            fields.setdefault("actor", Actor(subject=subject, tenant=f"t-{subject}"))
        inp = self.make_input(**fields)
        return inp._replace(now=inp.now + timedelta(seconds=t))

    def allowed(self, t: float = 0.0, subject: str | None = "u-1", **fields: object) -> bool:
        return self.policy.evaluate(self.send(t, subject, **fields)).allowed


def test_a_burst_is_allowed_then_denied_with_evidence(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    s = Sender(limiter(load_spec), make_input)
    assert [s.allowed() for _ in range(4)] == [True, True, True, False]
    result = s.policy.evaluate(s.send()).results[0]
    assert (result.outcome, result.code) == ("deny", "rate_limited")
    assert result.evidence == {
        "key_kind": "actor",
        "key_sha256": hashlib.sha256(b"u-1").hexdigest()[:16],
        "retry_after_s": 1.0,
    }
    assert "u-1" not in json.dumps(dict(result.evidence)) + (result.reason or "")


def test_tokens_refill_at_rate_up_to_burst(load_spec: LoadText, make_input: MakeInput) -> None:
    s = Sender(limiter(load_spec, rate=2), make_input)
    assert all(s.allowed(0) for _ in range(3))
    assert not s.allowed(0.25)  # half a token
    assert s.allowed(0.5)  # one token back
    assert not s.allowed(0.5)
    # A long pause refills to burst, no further.
    assert [s.allowed(100) for _ in range(4)] == [True, True, True, False]


def test_retry_after_says_how_long_to_wait(load_spec: LoadText, make_input: MakeInput) -> None:
    s = Sender(limiter(load_spec, rate=4, burst=1), make_input)
    assert s.allowed(0)
    result = s.policy.evaluate(s.send(0.1)).results[0]
    assert result.evidence["retry_after_s"] == pytest.approx(0.15)
    assert not s.allowed(0.24)
    assert s.allowed(0.251)


def test_a_clock_that_steps_back_adds_no_tokens(load_spec: LoadText, make_input: MakeInput) -> None:
    s = Sender(limiter(load_spec, burst=1), make_input)
    assert s.allowed(10)
    assert not s.allowed(5)
    assert not s.allowed(10.5)
    assert s.allowed(11)


def test_each_actor_has_its_own_bucket(load_spec: LoadText, make_input: MakeInput) -> None:
    s = Sender(limiter(load_spec, burst=1), make_input)
    assert s.allowed(subject="u-1")
    assert not s.allowed(subject="u-1")
    assert s.allowed(subject="u-2")


def test_messages_without_an_actor_share_one_anonymous_bucket(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    s = Sender(limiter(load_spec, burst=1), make_input)
    assert s.allowed(subject=None, sender="web")
    result = s.policy.evaluate(s.send(subject=None, sender="mobile")).results[0]
    assert result.code == "rate_limited"
    assert result.evidence["key_sha256"] == hashlib.sha256(b"anonymous").hexdigest()[:16]


def test_per_sender_counts_every_actor_of_one_sender_together(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    s = Sender(limiter(load_spec, burst=1, per="sender"), make_input)
    assert s.allowed(subject="u-1", sender="web")
    denied = s.policy.evaluate(s.send(subject="u-2", sender="web")).results[0]
    assert denied.evidence["key_kind"] == "sender"
    assert s.allowed(subject="u-1", sender="mobile")


def test_per_tenant_counts_every_subject_of_one_tenant_together(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    s = Sender(limiter(load_spec, burst=1, per="tenant"), make_input)
    assert s.allowed(actor=Actor(subject="a", tenant="acme"))
    assert not s.allowed(actor=Actor(subject="b", tenant="acme"))
    assert s.allowed(actor=Actor(subject="a", tenant="globex"))


def test_types_outside_the_globs_spend_nothing(load_spec: LoadText, make_input: MakeInput) -> None:
    s = Sender(limiter(load_spec, burst=1), make_input)
    assert all(s.allowed(type="chat.message") for _ in range(5))
    assert s.allowed(type="portfolio.analyze")
    assert not s.allowed(type="portfolio.advise")


def test_one_message_to_many_recipients_costs_one_token(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    """Policy evaluation runs once per recipient; the bucket is charged once per dispatch."""
    s = Sender(limiter(load_spec, burst=2), make_input)
    fan_out = s.send()
    for name in ("advisor", "snapshot", "auditor"):
        card = AgentCard(name=name, handles="portfolio.*")
        assert s.policy.evaluate(fan_out._replace(recipient=card)).allowed
    assert s.allowed()  # the second token is still there
    third = s.send()
    assert not s.policy.evaluate(third).allowed
    # The denial holds for that dispatch's other recipients too, and costs nothing more.
    assert not s.policy.evaluate(third._replace(recipient=AgentCard(name="x", handles="*"))).allowed
    assert s.policy.evaluate(third._replace(now=third.now + timedelta(seconds=1))).allowed


def test_reusing_a_message_id_later_pays_again(load_spec: LoadText, make_input: MakeInput) -> None:
    """Ids are chosen by senders: one id sent over and over must not ride on one token."""
    s = Sender(limiter(load_spec, burst=2), make_input)
    first = s.send()
    assert s.policy.evaluate(first).allowed
    later = first._replace(now=first.now + timedelta(milliseconds=1))
    assert s.policy.evaluate(later).allowed
    assert not s.policy.evaluate(later._replace(now=later.now + timedelta(milliseconds=1))).allowed


def test_least_recently_used_keys_are_evicted_past_max_keys(
    load_spec: LoadText, make_input: MakeInput
) -> None:
    s = Sender(limiter(load_spec, burst=1, max_keys=2), make_input)
    assert s.allowed(subject="a")
    assert s.allowed(subject="b")
    assert not s.allowed(subject="a")  # touches a: b is now the least recently used
    assert s.allowed(subject="c")  # evicts b
    assert not s.allowed(subject="a")  # a was kept, still empty
    assert s.allowed(subject="b")  # b came back with a full bucket


def test_state_belongs_to_each_loaded_policy(load_spec: LoadText, make_input: MakeInput) -> None:
    first = Sender(limiter(load_spec, burst=1), make_input)
    second = Sender(limiter(load_spec, burst=1), make_input)
    assert first.allowed()
    assert second.allowed()


@pytest.mark.parametrize(
    ("key", "value", "line"),
    [
        ("rate", "0", 11),
        ("rate", "-1.5", 11),
        ("rate", "fast", 11),
        ("burst", "0", 12),
        ("burst", "1.5", 12),
        ("per", "user", 13),
        ("types", '["Portfolio/*"]', 14),
        ("max_keys", "0", 15),
    ],
)
def test_bad_parameters_are_reported_where_they_are(
    load_spec: LoadText, key: str, value: str, line: int
) -> None:
    with pytest.raises(PolicyError) as info:
        limiter(load_spec, **{key: value})
    [issue] = info.value.issues
    assert (issue.line, issue.code) == (line, "invalid_param")
    assert key in issue.message


def test_an_infinite_rate_is_refused(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        limiter(load_spec, rate=".inf")
    [issue] = info.value.issues
    assert issue.line == 11


def test_rate_and_burst_are_required(load_spec: LoadText) -> None:
    with pytest.raises(PolicyError) as info:
        load_spec("""
            spec:
              checks: [{id: rate, use: rate_limit, per: sender}]
            """)
    assert sorted(i.message.rsplit(" ", 1)[-1] for i in info.value.issues) == ["'burst'", "'rate'"]
    assert {i.code for i in info.value.issues} == {"missing_param"}


def test_rate_limit_is_registered_with_a_summary() -> None:
    kind = CHECK_KINDS["rate_limit"]
    assert {"rate", "burst", "per", "types", "max_keys"} <= set(kind.params.model_fields)
    assert kind.summary.endswith(".")
