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
    Step("advice for A-100 (balanced)", _request("A-100"), "ok"),
    Step("advice for A-200 (growth)", _request("A-200"), "ok"),
    Step(
        "customer calls the advisor directly",
        Message(
            type="portfolio.advise",
            sender="mobile-app",
            actor=CUSTOMER,
            payload={"account": "A-100", "analysis": {}},
        ),
        "denied",
    ),
    Step(
        "oversized statement upload (200 KB)",
        _request("A-100", statement="x" * 200_000),
        "denied",
    ),
    Step("advice for A-300 (slow market data)", _request("A-300"), "degraded"),
    Step("advice for A-400 (corrupt holdings)", _request("A-400"), "partial"),
)
