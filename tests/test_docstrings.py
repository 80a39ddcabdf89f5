"""Every example in a public docstring runs and shows what it says (doctest)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import govbus

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(govbus.__path__, "govbus.")
    if not info.name.startswith(("govbus.examples", "govbus.cli.main"))
    and not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
