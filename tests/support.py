"""Helpers shared by tests (not fixtures: plain functions, imported explicitly)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def copy_default_policy(
    directory: Path, text: str | None = None, name: str = "default.yaml"
) -> Path:
    """Write the default policy (or ``text``) into ``directory`` with the schema files it names.

    The policy refers to ``schemas/...`` relative to itself, so a copy needs them beside it.
    """
    shutil.copytree(ROOT / "policies" / "schemas", directory / "schemas", dirs_exist_ok=True)
    target = directory / name
    target.write_text(DEFAULT_POLICY.read_text() if text is None else text)
    return target
