"""The agent registry: one place that knows every agent, refuses duplicates, resolves types."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from govbus.errors import DuplicateAgentError, RegistryError, UnknownAgentError
from govbus.registry.agent import Agent
from govbus.registry.card import AgentCard


class AgentRegistry:
    """Agents by name, with a memoized ``resolve(type)``.

    Example:
        >>> from govbus.registry.agent import agent
        >>> @agent("echo", handles="echo.*")
        ... async def echo(msg, ctx): return None
        >>> reg = AgentRegistry(); _ = reg.register(echo)
        >>> [c.name for c in reg.resolve("echo.ping")]
        ['echo']
    """

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._resolved: dict[str, tuple[AgentCard, ...]] = {}
        self._listeners: list[Callable[[Agent], None]] = []

    def register(self, agent: Agent) -> Agent:
        """Add ``agent``; raise :class:`DuplicateAgentError` if its name is taken."""
        if not isinstance(agent, Agent) or not hasattr(agent, "card"):
            raise RegistryError(
                f"cannot register {agent!r}: expected an Agent instance with a card "
                "(use @app.agent(...) or subclass Agent with card keywords)"
            )
        name = agent.card.name
        if name in self._agents:
            raise DuplicateAgentError(
                f"an agent named {name!r} is already registered "
                f"({self._agents[name]!r}); agent names must be unique"
            )
        self._agents[name] = agent
        self._resolved.clear()
        for listener in self._listeners:
            listener(agent)
        return agent

    def replace(self, agent: Agent) -> Agent:
        """Swap the agent registered under ``agent.card.name`` for ``agent``; returns the one
        replaced. Listeners are not called (it is the same agent, wrapped). The drill runner's
        fault-injection layer uses this before an app starts; an agent already attached to a
        running orchestrator keeps its old handler.

        Raises:
            UnknownAgentError: no agent of that name is registered.
        """
        old = self.get(agent.card.name)
        self._agents[agent.card.name] = agent
        self._resolved.clear()
        return old

    def on_register(self, listener: Callable[[Agent], None]) -> None:
        """Call ``listener`` for every agent registered from now on."""
        self._listeners.append(listener)

    def get(self, name: str) -> Agent:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgentError(
                f"no agent named {name!r} (registered: {', '.join(sorted(self._agents)) or 'none'})"
            ) from None

    def card(self, name: str | None) -> AgentCard | None:
        """The card of agent ``name``, or None if no such agent is registered."""
        if name is None:
            return None
        found = self._agents.get(name)
        return None if found is None else found.card

    def resolve(self, message_type: str) -> tuple[AgentCard, ...]:
        """Cards of every agent whose ``handles`` matches ``message_type``, by name."""
        hit = self._resolved.get(message_type)
        if hit is None:
            hit = tuple(
                a.card for _, a in sorted(self._agents.items()) if a.card.accepts(message_type)
            )
            self._resolved[message_type] = hit
        return hit

    def validate(self) -> None:
        """Check cross-references: every fallback names a registered agent."""
        problems = [
            f"agent {a.card.name!r} names fallback {a.card.fallback!r}, which is not registered"
            for a in self._agents.values()
            if a.card.fallback is not None and a.card.fallback not in self._agents
        ]
        if problems:
            raise RegistryError("; ".join(problems))

    @property
    def cards(self) -> tuple[AgentCard, ...]:
        return tuple(a.card for _, a in sorted(self._agents.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __iter__(self) -> Iterator[Agent]:
        return iter(list(self._agents.values()))

    def __len__(self) -> int:
        return len(self._agents)
