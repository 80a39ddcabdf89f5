"""``Route``: the routing value object, tested without a bus."""

from __future__ import annotations

import dataclasses

import pytest

from govbus.bus.base import Route
from govbus.envelope import Message, TypePattern


def _msg(type: str = "task.do", to: str | None = None) -> Message:
    return Message(type=type, sender="tester", to=to)


def test_empty_route_matches_everything() -> None:
    """A route with neither recipient nor types matches any type at any address."""
    route = Route()
    assert route.matches(_msg("a.b"), None)
    assert route.matches(_msg("x"), "anyone")


def test_recipient_matches_exact_address_only() -> None:
    """A recipient route matches only that exact publish address."""
    route = Route(recipient="alice")
    assert route.matches(_msg(), "alice")
    assert not route.matches(_msg(), "alice2")
    assert not route.matches(_msg(), "Alice")
    assert not route.matches(_msg(), None)


def test_recipient_is_checked_against_the_address_not_message_to() -> None:
    """Routing uses the publish address, which may differ from ``message.to``."""
    route = Route(recipient="inbox-1")
    assert route.matches(_msg(to="svc"), "inbox-1")
    assert not route.matches(_msg(to="inbox-1"), "svc")


def test_types_glob_matches_type() -> None:
    """A type route matches by glob, across dotted segments."""
    route = Route(types=TypePattern("portfolio.*"))
    assert route.matches(_msg("portfolio.analyze"), None)
    assert route.matches(_msg("portfolio.analyze.result"), "x")
    assert not route.matches(_msg("portfolios.list"), None)
    assert not route.matches(_msg("risk.score"), None)


def test_types_list_matches_any_pattern() -> None:
    """Several patterns: a type matching any one of them matches."""
    route = Route(types=TypePattern(["a.*", "b.exact"]))
    assert route.matches(_msg("a.one"), None)
    assert route.matches(_msg("b.exact"), None)
    assert not route.matches(_msg("b.other"), None)


def test_recipient_and_types_must_both_match() -> None:
    """With both set, the address and the type must each match."""
    route = Route(recipient="alice", types=TypePattern("task.*"))
    assert route.matches(_msg("task.do"), "alice")
    assert not route.matches(_msg("note.add"), "alice")
    assert not route.matches(_msg("task.do"), "bob")


@pytest.mark.parametrize(
    ("route", "text"),
    [
        (Route(), "all"),
        (Route(recipient="alice"), "to=alice"),
        (Route(types=TypePattern(["a.*", "b"])), "types=a.*,b"),
        (Route(recipient="alice", types=TypePattern("task.*")), "to=alice types=task.*"),
    ],
)
def test_describe_names_recipient_and_types(route: Route, text: str) -> None:
    """``describe`` renders the route for logs and subscription names."""
    assert route.describe() == text


def test_routes_compare_by_value() -> None:
    """Two routes with the same recipient and patterns are equal and hash alike."""
    first = Route(recipient="a", types=TypePattern(["x.*"]))
    second = Route(recipient="a", types=TypePattern(["x.*"]))
    assert first == second
    assert hash(first) == hash(second)
    assert first != Route(recipient="a", types=TypePattern(["y.*"]))
    assert first != Route(recipient="b", types=TypePattern(["x.*"]))


def test_route_is_frozen() -> None:
    """A route cannot be changed after construction."""
    route = Route(recipient="alice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.recipient = "bob"  # type: ignore[misc]
