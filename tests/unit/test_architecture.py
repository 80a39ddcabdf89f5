"""Structure: the public API, and the rule that a lower layer never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import govbus

SRC = Path(govbus.__file__).resolve().parent

#: Which govbus layers each layer may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "dburl": {"errors"},
    "envelope": {"errors"},
    "bus": {"envelope", "errors", "dburl"},
    "registry": {"envelope", "errors"},
    "audit": {"errors", "dburl"},
    "telemetry": {"envelope", "errors"},
    "resilience": {"envelope", "errors"},
    "policy": {"envelope", "registry", "errors", "dburl"},
    "models": {"errors", "resilience"},
    "redteam": {"envelope", "registry", "policy", "errors"},
    "orchestrator": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "models",
    },
    "testing": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "orchestrator", "models",
    },
    "drills": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "orchestrator", "models",
    },
    "inventory": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "orchestrator", "models",
    },
    "examples": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "orchestrator", "models", "__init__",
    },
    "cli": {
        "envelope", "bus", "registry", "policy", "audit", "telemetry", "resilience", "errors",
        "orchestrator", "examples", "redteam", "models", "drills", "inventory", "__init__",
    },
}  # fmt: skip


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "govbus":
                layers.add(parts[1] if len(parts) > 1 else "__init__")
    return layers


def test_no_layer_imports_a_higher_one() -> None:
    problems = []
    files = [p for p in SRC.rglob("*.py") if p.parent != SRC or p.name in ("errors.py", "dburl.py")]
    assert len(files) > 30
    for path in files:
        layer = layer_of(path)
        for target in imported_layers(path) - {layer}:
            if target not in ALLOWED[layer]:
                problems.append(f"{path.relative_to(SRC)} ({layer}) imports govbus.{target}")
    assert not problems, "\n".join(problems)


def test_top_level_api() -> None:
    """The names `import govbus` promises; changing this list is an API change."""
    assert sorted(govbus.__all__) == sorted(
        [
            "DENIED", "FAILED", "Actor", "Agent", "AgentCard", "AgentRegistry", "Alert",
            "App", "AppConfig", "Classification", "Context", "DispatchReport",
            "GovbusError", "HmacSigner", "Message", "Orchestrator", "Policy", "Risk",
            "__version__", "agent", "load_policy", "new_id",
        ]
    )  # fmt: skip
    for name in govbus.__all__:
        assert getattr(govbus, name) is not None


def test_every_layer_exports_what_it_lists() -> None:
    import importlib

    layers = ("envelope", "bus", "registry", "policy", "audit", "orchestrator", "resilience")
    for layer in (*layers, "redteam"):
        module = importlib.import_module(f"govbus.{layer}")
        for name in module.__all__:
            assert hasattr(module, name), f"govbus.{layer} lists {name} but lacks it"
