"""The check-kind registry: keys, validation of kinds, copies."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from govbus.policy import (
    ALLOW,
    CHECK_KINDS,
    CheckFn,
    CheckKind,
    CheckKindRegistry,
    CheckParams,
    LoadContext,
)
from govbus.policy.errors import CheckKindError, DuplicateCheckKindError


def allow_all(params: BaseModel, ctx: LoadContext) -> CheckFn:
    return lambda inp: ALLOW


def test_importing_govbus_policy_registers_the_built_in_kinds() -> None:
    assert {"length", "required_metadata", "rbac"} <= set(CHECK_KINDS.keys())
    for kind in CHECK_KINDS:
        assert kind.summary.strip()
        assert "\n" not in kind.summary


def test_register_is_a_decorator_returning_the_build_function() -> None:
    registry = CheckKindRegistry()

    @registry.register("always_allow", params=CheckParams, summary="Allow everything.")
    def build(params: CheckParams, ctx: LoadContext) -> CheckFn:
        return lambda inp: ALLOW

    kind = registry.get("always_allow")
    assert isinstance(kind, CheckKind)
    assert kind.build is build
    assert (kind.key, kind.params, kind.summary) == (
        "always_allow",
        CheckParams,
        "Allow everything.",
    )
    assert registry.keys() == ("always_allow",)
    assert "always_allow" in registry
    assert len(registry) == 1
    assert registry.get("other") is None


def test_unknown_key_lookup_suggests_the_closest() -> None:
    with pytest.raises(KeyError, match="did you mean 'length'"):
        CHECK_KINDS["lenght"]


def test_duplicate_keys_are_refused() -> None:
    registry = CHECK_KINDS.copy()
    with pytest.raises(DuplicateCheckKindError, match="'length' is already registered"):
        registry.register("length", params=CheckParams, summary="Another.")(allow_all)
    assert registry["length"] is CHECK_KINDS["length"]


@pytest.mark.parametrize(
    "key", ["Length", "prompt-injection", "2fa", "a__b", "_a", "a_", "", "a b", "pkg.kind"]
)
def test_keys_must_be_snake_case(key: str) -> None:
    with pytest.raises(CheckKindError, match="snake_case"):
        CheckKindRegistry().register(key, params=CheckParams, summary="x")(allow_all)


@pytest.mark.parametrize("key", ["pii", "prompt_injection", "rate_limit2", "a1_b2"])
def test_snake_case_keys_are_accepted(key: str) -> None:
    registry = CheckKindRegistry()
    registry.register(key, params=CheckParams, summary="x")(allow_all)
    assert key in registry


class Loose(BaseModel):
    limit: int = 1


class Mutable(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reserved(CheckParams):
    when: str = "always"


class Aliased(CheckParams):
    identifier: str = ""
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init_subclass__(cls) -> None:  # pragma: no cover - never subclassed
        super().__init_subclass__()


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (Loose, "must forbid extra keys and be frozen"),
        (Mutable, "must forbid extra keys and be frozen"),
        (Reserved, "reserved"),
        (dict, "pydantic model class"),
    ],
)
def test_parameter_models_must_be_strict_and_avoid_frame_keys(
    params: type[BaseModel], fragment: str
) -> None:
    with pytest.raises(CheckKindError, match=fragment):
        CheckKindRegistry().register("k", params=params, summary="x")(allow_all)


@pytest.mark.parametrize("summary", ["", "   ", "two\nlines"])
def test_summary_must_be_one_line(summary: str) -> None:
    with pytest.raises(CheckKindError, match="one non-empty line"):
        CheckKindRegistry().register("k", params=CheckParams, summary=summary)(allow_all)


def test_copy_is_independent_of_the_original() -> None:
    copy = CHECK_KINDS.copy()
    copy.register("only_in_copy", params=CheckParams, summary="x")(allow_all)
    assert "only_in_copy" in copy
    assert "only_in_copy" not in CHECK_KINDS
    assert set(CHECK_KINDS.keys()) <= set(copy.keys())


def test_check_params_forbid_extra_keys_and_are_frozen() -> None:
    class Params(CheckParams):
        limit: int = 1

    params = Params(limit=2)
    with pytest.raises(ValueError, match="frozen"):
        params.limit = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="Extra inputs"):
        Params.model_validate({"limit": 1, "other": 2})
