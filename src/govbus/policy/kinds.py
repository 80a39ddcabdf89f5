"""The check-kind registry: the only way a policy file reaches code.

YAML names a check by **registry key plus parameters**, never by import path: a policy file can
only use kinds that the running program registered, and each kind validates its parameters with
its own pydantic model before anything is built. (Importing classes by dotted path from a config
file turns every config reviewer into a code reviewer, and every typo into an ImportError.)

A kind is a key, a parameter model, a build function and a one-line summary::

    class LengthParams(CheckParams):
        max_bytes: int = Field(gt=0)

    @CHECK_KINDS.register("length", params=LengthParams, summary="Deny messages over a size.")
    def build(params: LengthParams, ctx: LoadContext) -> CheckFn:
        def check(inp: CheckInput) -> Decision: ...
        return check

Custom kinds register the same way, under their own key, and are then usable from YAML exactly
like the built-ins. An application that wants extra kinds without touching the process-wide
registry registers them on ``CHECK_KINDS.copy()`` and passes that to the loader.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from govbus.envelope import validate_glob
from govbus.policy.errors import CheckKindError, DuplicateCheckKindError, did_you_mean
from govbus.policy.types import CheckFn

__all__ = [
    "CHECK_KINDS",
    "RESERVED_KEYS",
    "BuildFn",
    "CheckKind",
    "CheckKindRegistry",
    "CheckParams",
    "LoadContext",
]

_KEY_PATTERN: Final = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*\Z")

#: Keys of a check entry that belong to the policy frame, not to the kind's parameters.
RESERVED_KEYS: Final = frozenset({"id", "use", "when", "mode", "description"})


def _glob(value: str) -> str:
    return validate_glob(value)


#: A parameter holding a message-type glob (``portfolio.*``): validated where it is written,
#: so a bad glob is reported at its own line.
TypeGlob = Annotated[StrictStr, Field(min_length=1), AfterValidator(_glob)]


def join_or(items: Iterable[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``: for ``describe`` sentences."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


class CheckParams(BaseModel):
    """Base model for a kind's parameters: unknown keys are errors, and parameters are frozen.

    Subclass it; the registry refuses parameter models that allow extra keys or are mutable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class LoadContext:
    """What a build function may know about the policy being loaded.

    Attributes:
        policy_path: the policy file, or None when the policy came from a string.
        base_dir: directory that relative file parameters (schemas, ledgers) resolve against.
        roles: the roles declared in ``spec.roles`` (empty when the policy declares none).
        check_id: the id of the check being built.
        files: the files read through :meth:`read_text` so far, by the name the policy gives
            them, with the sha256 of their bytes (shared by every check of one load).
    """

    policy_path: Path | None
    base_dir: Path
    roles: frozenset[str]
    check_id: str
    files: dict[str, str] = field(default_factory=dict)

    def resolve(self, relative: str | Path) -> Path:
        """``relative`` resolved against :attr:`base_dir` (absolute paths are kept)."""
        return self.base_dir / relative

    def read_text(self, relative: str) -> str:
        """Read a UTF-8 file the policy names, and make the policy's hash cover its content.

        A check that reads a file (a schema, a word list) must read it here: otherwise editing
        the file would change what the policy does without changing its sha256, and an approval
        would still match.

        Raises:
            OSError: the file cannot be read (FileNotFoundError when it does not exist).
            UnicodeDecodeError: the file is not UTF-8.
        """
        data = self.resolve(relative).read_bytes()
        text = data.decode("utf-8")
        self.files[relative] = hashlib.sha256(data).hexdigest()
        return text


#: A build function turns validated parameters into a check callable, once, at load time.
BuildFn = Callable[[P, LoadContext], CheckFn]


@dataclass(frozen=True, slots=True)
class CheckKind(Generic[P]):
    """A registered check kind.

    Attributes:
        key: snake_case name used in YAML (``use: length``).
        params: pydantic model validating the check entry's parameters.
        build: turns validated parameters and a :class:`LoadContext` into a check callable.
        summary: one plain-language line, shown by ``govbus policy explain``.
        describe: optional: a check's parameters in plain-language sentences, for
            ``govbus policy explain`` (without it, explain lists parameter names and values).
    """

    key: str
    params: type[P]
    build: BuildFn[P]
    summary: str
    describe: Callable[[P], list[str]] | None = None


class CheckKindRegistry:
    """Check kinds by key.

    Example:
        >>> from govbus.policy.types import ALLOW
        >>> reg = CheckKindRegistry()
        >>> @reg.register("always_allow", params=CheckParams, summary="Allow everything.")
        ... def build(params: CheckParams, ctx: LoadContext) -> CheckFn:
        ...     return lambda inp: ALLOW
        >>> reg.keys()
        ('always_allow',)
    """

    def __init__(self, kinds: Iterable[CheckKind[Any]] = ()) -> None:
        self._kinds: dict[str, CheckKind[Any]] = {}
        for kind in kinds:
            self.add(kind)

    def register(
        self,
        key: str,
        *,
        params: type[P],
        summary: str,
        describe: Callable[[P], list[str]] | None = None,
    ) -> Callable[[BuildFn[P]], BuildFn[P]]:
        """Decorator registering a build function under ``key``; returns the function unchanged.

        Raises:
            CheckKindError: the key is not snake_case, the model is not strict, or the summary is
                not one non-empty line.
            DuplicateCheckKindError: ``key`` is already registered here.
        """

        def decorator(build: BuildFn[P]) -> BuildFn[P]:
            self.add(
                CheckKind(key=key, params=params, build=build, summary=summary, describe=describe)
            )
            return build

        return decorator

    def add(self, kind: CheckKind[Any]) -> None:
        """Register an already built :class:`CheckKind` (see :meth:`register`)."""
        _validate(kind)
        if kind.key in self._kinds:
            raise DuplicateCheckKindError(
                f"check kind {kind.key!r} is already registered "
                f"(by {_qualname(self._kinds[kind.key].build)}); pick another key, or register "
                "on CHECK_KINDS.copy() to replace kinds for one application"
            )
        self._kinds[kind.key] = kind

    def get(self, key: str) -> CheckKind[Any] | None:
        """The kind registered under ``key``, or None."""
        return self._kinds.get(key)

    def __getitem__(self, key: str) -> CheckKind[Any]:
        kind = self._kinds.get(key)
        if kind is None:
            raise KeyError(f"unknown check kind {key!r}{did_you_mean(key, self._kinds)}")
        return kind

    def keys(self) -> tuple[str, ...]:
        """Registered keys, sorted."""
        return tuple(sorted(self._kinds))

    def copy(self) -> CheckKindRegistry:
        """An independent registry with the same kinds; registering on it leaves this one as is."""
        return CheckKindRegistry(self._kinds.values())

    def __contains__(self, key: object) -> bool:
        return key in self._kinds

    def __iter__(self) -> Iterator[CheckKind[Any]]:
        return iter(sorted(self._kinds.values(), key=lambda k: k.key))

    def __len__(self) -> int:
        return len(self._kinds)

    def __repr__(self) -> str:
        return f"CheckKindRegistry({list(self.keys())!r})"


def _validate(kind: CheckKind[Any]) -> None:
    if not isinstance(kind.key, str) or not _KEY_PATTERN.match(kind.key):
        raise CheckKindError(
            f"check kind key {kind.key!r} must be snake_case (lowercase letters and digits "
            "separated by single underscores, starting with a letter), e.g. 'prompt_injection'"
        )
    params = kind.params
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise CheckKindError(f"check kind {kind.key!r}: params must be a pydantic model class")
    config = params.model_config
    if config.get("extra") != "forbid" or not config.get("frozen"):
        raise CheckKindError(
            f"check kind {kind.key!r}: parameter model {params.__name__} must forbid extra keys "
            "and be frozen; subclass govbus.policy.CheckParams"
        )
    clashes = sorted(
        RESERVED_KEYS.intersection(
            name for field_name, f in params.model_fields.items() for name in (field_name, f.alias)
        )
    )
    if clashes:
        raise CheckKindError(
            f"check kind {kind.key!r}: parameter names {clashes} are reserved for the policy "
            f"frame ({', '.join(sorted(RESERVED_KEYS))})"
        )
    if not callable(kind.build):
        raise CheckKindError(f"check kind {kind.key!r}: build must be callable")
    summary = kind.summary
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary:
        raise CheckKindError(f"check kind {kind.key!r}: summary must be one non-empty line")


def _qualname(fn: object) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


#: The process-wide default registry; the built-in kinds register here on ``import govbus.policy``.
CHECK_KINDS: Final = CheckKindRegistry()
