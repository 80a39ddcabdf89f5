"""Fixtures for the policy layer: check inputs, and a registry with scriptable test kinds."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from govbus.envelope import Message
from govbus.policy import (
    CHECK_KINDS,
    CheckFn,
    CheckInput,
    CheckKindRegistry,
    CheckParams,
    Decision,
    LoadContext,
    MessageScan,
    Policy,
    parse_policy,
)
from govbus.registry.card import AgentCard

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

HEADER = """\
apiVersion: govbus/v1
kind: Policy
metadata:
  name: test
  version: "1"
"""

MakeInput = Callable[..., CheckInput]


@pytest.fixture
def make_input() -> MakeInput:
    """Build a :class:`CheckInput` from a message (or message fields) and a recipient card."""

    def make(
        message: Message | None = None,
        *,
        recipient: AgentCard | None = None,
        **fields: Any,
    ) -> CheckInput:
        if message is None:
            fields.setdefault("type", "portfolio.analyze")
            fields.setdefault("sender", "web")
            message = Message(**fields)
        return CheckInput(
            message=message,
            recipient=recipient,
            sender=None,
            now=NOW,
            scan=MessageScan(message),
        )

    return make


class ScriptParams(CheckParams):
    """``script``: run the test callable registered under ``name`` in the ``scripts`` fixture."""

    name: str = Field(min_length=1)


@pytest.fixture
def scripts() -> dict[str, Callable[[CheckInput], Decision]]:
    """Test callables, by name, for the ``script`` kind; tests add their own."""
    return {}


@pytest.fixture
def kinds(scripts: dict[str, Callable[[CheckInput], Decision]]) -> Iterator[CheckKindRegistry]:
    """The built-in kinds plus ``script``, on a copy so the global registry is untouched."""
    registry = CHECK_KINDS.copy()

    @registry.register("script", params=ScriptParams, summary="Run a test callable.")
    def build(params: ScriptParams, ctx: LoadContext) -> CheckFn:
        return scripts[params.name]

    yield registry
    assert "script" not in CHECK_KINDS


LoadText = Callable[[str], Policy]


@pytest.fixture
def load_spec(kinds: CheckKindRegistry) -> LoadText:
    """Parse a policy from the ``spec:`` section alone (dedented; the header is added)."""

    def load(spec: str) -> Policy:
        return parse_policy(HEADER + textwrap.dedent(spec), kinds=kinds)

    return load


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    """Write dedented policy text to a file and return its path."""

    def write(text: str, name: str = "policy.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
