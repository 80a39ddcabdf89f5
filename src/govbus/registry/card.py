"""Agent cards: what the registry, the policy and the inventory know about an agent."""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from govbus.envelope import Classification, RankedStrEnum, TypePattern, validate_glob

_NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,63}$"


class Risk(RankedStrEnum):
    """Risk class, ordered ``low < medium < high < critical``."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ModelRef(BaseModel):
    """The model behind an agent: ``provider`` and model ``name`` (``"openai/gpt-4o"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field(min_length=1)
    name: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            provider, sep, name = value.partition("/")
            if not sep or not provider or not name:
                raise ValueError(f"model {value!r} must be 'provider/name', e.g. 'openai/gpt-4o'")
            return {"provider": provider, "name": name}
        return value

    def __str__(self) -> str:
        return f"{self.provider}/{self.name}"


def _as_tuple(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


class AgentCard(BaseModel):
    """Everything about an agent except its code.

    Example:
        >>> card = AgentCard(name="advisor", handles="portfolio.advise", risk="high")
        >>> card.accepts("portfolio.advise"), card.risk > Risk.MEDIUM
        (True, True)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME_PATTERN)
    version: str = Field(default="0.1.0", min_length=1, max_length=64)
    description: str = ""
    owner: str = "unassigned"
    handles: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = Field(min_length=1)
    risk: Risk = Risk.LOW
    clearance: Classification = Classification.INTERNAL
    model: ModelRef | None = None
    fallback: str | None = Field(default=None, pattern=_NAME_PATTERN)
    timeout: float = Field(default=5.0, gt=0, le=3600)
    region: str | None = None
    tags: Annotated[tuple[str, ...], BeforeValidator(_as_tuple)] = ()
    concurrency: int = Field(default=16, ge=1, le=10_000)
    max_attempts: int = Field(default=1, ge=1, le=100)

    @field_validator("handles")
    @classmethod
    def _valid_globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            validate_glob(pattern)
        return value

    @model_validator(mode="after")
    def _not_own_fallback(self) -> AgentCard:
        if self.fallback == self.name:
            raise ValueError(f"agent {self.name!r} cannot be its own fallback")
        return self

    @property
    def deterministic(self) -> bool:
        """True when no model is behind the agent (plain code)."""
        return self.model is None

    @property
    def pattern(self) -> TypePattern:
        return _pattern_for(self.handles)

    def accepts(self, message_type: str) -> bool:
        return _pattern_for(self.handles).matches(message_type)


_PATTERNS: dict[tuple[str, ...], TypePattern] = {}


def _pattern_for(handles: tuple[str, ...]) -> TypePattern:
    pattern = _PATTERNS.get(handles)
    if pattern is None:
        pattern = _PATTERNS[handles] = TypePattern(handles)
    return pattern
