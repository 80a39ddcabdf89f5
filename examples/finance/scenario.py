"""The scripted requests ``govbus run`` sends, each with the outcome it should produce."""

from __future__ import annotations

from dataclasses import dataclass

from govbus import Actor, Message

ADVISOR = Actor(subject="asha.rao", roles=("advisor",), tenant="retail-eu")
CUSTOMER = Actor(subject="cust-8812", roles=("customer",), tenant="retail-eu")


@dataclass(frozen=True)
class Step:
    """One scripted request: what to send and which outcome a correct run shows."""

    label: str
    message: Message
    expect: str  # ok | denied | degraded | partial


def _request(account: str, actor: Actor = ADVISOR, **payload: object) -> Message:
    return Message(
        type="advisory.request",
        sender="advisor-portal",
        actor=actor,
        payload={"account": account, **payload},
    )


SCENARIO: tuple[Step, ...] = (
    Step("advice, A-100", _request("A-100"), "ok"),
    Step("advice, A-200", _request("A-200"), "ok"),
    Step(
        "customer calls advisor",
        Message(
            type="portfolio.advise",
            sender="mobile-app",
            actor=CUSTOMER,
            payload={"account": "A-100", "analysis": {}},
        ),
        "denied",
    ),
    Step(
        "200 KB upload",
        _request("A-100", statement="x" * 200_000),
        "denied",
    ),
    Step("advice, A-300 (slow data)", _request("A-300"), "degraded"),
    Step("advice, A-400 (bad data)", _request("A-400"), "partial"),
)
