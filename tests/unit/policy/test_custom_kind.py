"""A custom kind registered in code is usable from YAML exactly like a built-in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import Field

from govbus.policy import (
    ALLOW,
    CHECK_KINDS,
    CheckFn,
    CheckInput,
    CheckParams,
    Decision,
    Deny,
    LoadContext,
    PolicyError,
    load_policy,
)

MakeInput = Callable[..., CheckInput]

POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: custom, version: "1"}
spec:
  checks:
    - id: size
      use: length
      max_bytes: 65536
    - id: no-shouting
      use: shouting
      max_caps_ratio: 0.5
      when: {types: ["chat.*"]}
"""


class ShoutingParams(CheckParams):
    """Parameters of the test kind ``shouting``."""

    max_caps_ratio: float = Field(gt=0, le=1)


def build_shouting(params: ShoutingParams, ctx: LoadContext) -> CheckFn:
    limit = params.max_caps_ratio

    def shouting(inp: CheckInput) -> Decision:
        letters = [c for c in inp.scan.text if c.isalpha()]
        ratio = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
        if ratio <= limit:
            return ALLOW
        return Deny("shouting", "too many capitals", {"ratio": round(ratio, 2)})

    return shouting


def test_custom_kind_registered_in_code_is_usable_from_yaml(
    tmp_path: Path, make_input: MakeInput
) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(POLICY, encoding="utf-8")
    kinds = CHECK_KINDS.copy()
    kinds.register(
        "shouting", params=ShoutingParams, summary="Deny messages written mostly in capitals."
    )(build_shouting)

    policy = load_policy(path, kinds=kinds)

    check = policy.check("no-shouting")
    assert check.kind == "shouting"
    assert check.params == ShoutingParams(max_caps_ratio=0.5)
    calm = make_input(type="chat.message", payload={"text": "hello there"})
    loud = make_input(type="chat.message", payload={"text": "HELLO THERE"})
    assert policy.evaluate(calm).allowed
    evaluation = policy.evaluate(loud)
    assert not evaluation.allowed
    assert evaluation.deciding is not None
    assert (evaluation.deciding.check_id, evaluation.deciding.code) == ("no-shouting", "shouting")


def test_custom_kind_parameters_are_validated_by_its_model(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(POLICY.replace("max_caps_ratio: 0.5", "max_caps_ratio: 2"), encoding="utf-8")
    kinds = CHECK_KINDS.copy()
    kinds.register("shouting", params=ShoutingParams, summary="Deny shouting.")(build_shouting)
    with pytest.raises(PolicyError) as info:
        load_policy(path, kinds=kinds)
    [issue] = info.value.issues
    assert (issue.line, issue.column, issue.code) == (11, 23, "invalid_param")


def test_an_unregistered_custom_kind_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(POLICY, encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)  # the global registry never saw 'shouting'
    [issue] = info.value.issues
    assert (issue.line, issue.column, issue.code) == (10, 12, "unknown_kind")
