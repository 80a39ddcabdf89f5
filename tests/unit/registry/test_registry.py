"""Agent cards and the registry: decorator and class forms, refusals, resolution."""

from __future__ import annotations

import pytest

from govbus.envelope import Classification, Message
from govbus.errors import (
    DuplicateAgentError,
    InvalidAgentCardError,
    RegistryError,
    UnknownAgentError,
)
from govbus.registry import Agent, AgentCard, AgentRegistry, Context, Risk, agent


@agent("echo", handles="echo.*", risk="low")
async def echo(msg: Message, ctx: Context) -> Message:
    """Echoes the payload back.

    More text that is not part of the description.
    """
    return ctx.reply("echo.reply", msg.payload)


class Snapshot(Agent, name="snapshot", handles=["portfolio.snapshot"], clearance="pii"):
    async def handle(self, message: Message, ctx: Context) -> None:
        return None


def test_decorator_form_builds_a_validated_card() -> None:
    assert echo.card.name == "echo"
    assert echo.card.handles == ("echo.*",)
    assert echo.card.description == "Echoes the payload back."
    assert echo.card.deterministic


def test_class_form_builds_its_card_at_class_creation() -> None:
    assert Snapshot.card.clearance is Classification.PII
    assert Snapshot().name == "snapshot"


def test_invalid_card_is_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidAgentCardError, match="timeout"):
        agent("slow", handles="a.b", timeout=-1)(echo.handler)
    with pytest.raises(InvalidAgentCardError, match="risk"):

        class Bad(Agent, name="bad", handles="a.b", risk="extreme"):
            pass


def test_bad_name_and_bad_glob_are_refused() -> None:
    with pytest.raises(InvalidAgentCardError, match="name"):
        agent("Has Spaces", handles="a.b")(echo.handler)
    with pytest.raises(InvalidAgentCardError, match="invalid type pattern"):
        agent("ok", handles="Bad Type")(echo.handler)


def test_agent_cannot_be_its_own_fallback() -> None:
    with pytest.raises(InvalidAgentCardError, match="own fallback"):
        agent("loop", handles="a.b", fallback="loop")(echo.handler)


def test_sync_handler_is_refused() -> None:
    def sync(msg: Message, ctx: Context) -> None:
        return None

    with pytest.raises(InvalidAgentCardError, match="async def"):
        agent("sync", handles="a.b")(sync)  # type: ignore[arg-type]


def test_model_reference_parses_provider_and_name() -> None:
    card = AgentCard(name="llm", handles="a.b", model="openai/gpt-4o")
    assert card.model is not None and (card.model.provider, card.model.name) == ("openai", "gpt-4o")
    assert not card.deterministic
    with pytest.raises(ValueError, match="provider/name"):
        AgentCard(name="llm", handles="a.b", model="gpt-4o")


def test_risk_is_ordered() -> None:
    assert Risk.LOW < Risk.MEDIUM < Risk.HIGH < Risk.CRITICAL
    assert max(Risk.HIGH, Risk.LOW) is Risk.HIGH


def test_registry_refuses_duplicate_names() -> None:
    reg = AgentRegistry()
    reg.register(echo)
    with pytest.raises(DuplicateAgentError, match="'echo' is already registered"):
        reg.register(agent("echo", handles="other.x")(echo.handler))


def test_registry_refuses_non_agents() -> None:
    with pytest.raises(RegistryError, match="expected an Agent"):
        AgentRegistry().register(object())  # type: ignore[arg-type]


def test_resolve_finds_every_matching_agent_and_updates_on_register() -> None:
    reg = AgentRegistry()
    reg.register(echo)
    assert [c.name for c in reg.resolve("echo.ping")] == ["echo"]
    assert reg.resolve("portfolio.snapshot") == ()
    reg.register(Snapshot())
    assert [c.name for c in reg.resolve("portfolio.snapshot")] == ["snapshot"]


def test_get_unknown_agent_names_what_exists() -> None:
    reg = AgentRegistry()
    reg.register(echo)
    with pytest.raises(UnknownAgentError, match="registered: echo"):
        reg.get("nope")
    assert reg.card("nope") is None


def test_validate_reports_dangling_fallback() -> None:
    reg = AgentRegistry()
    reg.register(agent("advisor", handles="a.b", fallback="missing")(echo.handler))
    with pytest.raises(RegistryError, match="fallback 'missing'"):
        reg.validate()


def test_listeners_hear_about_new_agents() -> None:
    reg = AgentRegistry()
    seen: list[str] = []
    reg.on_register(lambda a: seen.append(a.name))
    reg.register(echo)
    assert seen == ["echo"]
