"""String enums ordered by declaration order (classification levels, risk classes)."""

from __future__ import annotations

from enum import Enum, StrEnum

_RANKS: dict[type[Enum], dict[Enum, int]] = {}


def _rank(member: Enum) -> int:
    table = _RANKS.get(type(member))
    if table is None:
        table = _RANKS[type(member)] = {m: i for i, m in enumerate(type(member))}
    return table[member]


class RankedStrEnum(StrEnum):
    """A ``StrEnum`` whose members compare by declaration order, not alphabetically.

    >>> class Level(RankedStrEnum):
    ...     LOW = "low"
    ...     HIGH = "high"
    >>> Level.LOW < Level.HIGH, max(Level.HIGH, Level.LOW)
    (True, <Level.HIGH: 'high'>)
    """

    @property
    def rank(self) -> int:
        """Position in declaration order (0 for the lowest)."""
        return _rank(self)

    def __lt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _rank(self) < _rank(other)

    def __le__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _rank(self) <= _rank(other)

    def __gt__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _rank(self) > _rank(other)

    def __ge__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _rank(self) >= _rank(other)

    __hash__ = StrEnum.__hash__
