"""The README's and docs' Python examples run, in order, as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
DOCS = [
    doc
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    if BLOCK.search(doc.read_text())
]


def test_readme_has_examples() -> None:
    assert ROOT / "README.md" in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_python_examples_run(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(doc.read_text())
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": f"doc_{doc.stem}"}
    for number, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"{doc.name}[block {number}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{doc.name} python block {number} failed: {exc!r}") from exc
    main = namespace.get("main")
    if main is not None and asyncio.iscoroutinefunction(main):
        asyncio.run(main())
