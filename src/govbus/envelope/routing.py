"""Type patterns: the value objects that decide which message types a glob matches.

Globs are shell-style over the whole dotted type: ``*`` matches any run of characters
(dots included), ``?`` one character. ``portfolio.*`` matches ``portfolio.analyze`` and
``portfolio.analyze.result``; ``*`` matches every type. Patterns compile once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_GLOB_CHARS = re.compile(r"^[a-z0-9_.*?-]+$")


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | None:
    if "*" not in pattern and "?" not in pattern:
        return None
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z")


def validate_glob(pattern: str) -> str:
    """Return ``pattern`` if it is a valid type glob, else raise ``ValueError`` saying why."""
    if not pattern or not _GLOB_CHARS.match(pattern):
        raise ValueError(
            f"invalid type pattern {pattern!r}: use lowercase letters, digits, '_', '-', '.', "
            "and the wildcards '*' and '?'"
        )
    return pattern


class TypePattern:
    """A set of type globs with a memoized ``matches(type)``.

    >>> TypePattern(["portfolio.*"]).matches("portfolio.analyze")
    True
    """

    __slots__ = ("_cache", "_exact", "_regexes", "patterns")

    def __init__(self, patterns: Iterable[str] | str) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        self.patterns: tuple[str, ...] = tuple(validate_glob(p) for p in patterns)
        self._exact = frozenset(p for p in self.patterns if _compile(p) is None)
        self._regexes = tuple(r for p in self.patterns if (r := _compile(p)) is not None)
        self._cache: dict[str, bool] = {}

    def matches(self, message_type: str) -> bool:
        hit = self._cache.get(message_type)
        if hit is None:
            hit = message_type in self._exact or any(r.match(message_type) for r in self._regexes)
            if len(self._cache) < 10_000:
                self._cache[message_type] = hit
        return hit

    @property
    def matches_everything(self) -> bool:
        return "*" in self.patterns

    def __repr__(self) -> str:
        return f"TypePattern({list(self.patterns)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypePattern) and self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash(self.patterns)


def glob_match(pattern: str, value: str) -> bool:
    """Match one glob against one string (agent names, senders, types)."""
    regex = _compile(pattern)
    return value == pattern if regex is None else regex.match(value) is not None
