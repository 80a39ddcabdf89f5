"""Check inputs and the closed set of check decisions.

A check is a small pure callable ``(CheckInput) -> Decision``. Normal denials are values, never
exceptions; a check that raises is turned into a ``check_error`` deny by the composite runner.
Adding a field to :class:`CheckInput` never breaks an existing check.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, Protocol, TypeAlias

import orjson

from govbus.envelope import TRACEPARENT, Classification, Message
from govbus.registry.card import AgentCard

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


@dataclass(frozen=True, slots=True)
class Allow:
    """The check has no objection."""

    kind: Literal["allow"] = "allow"


@dataclass(frozen=True, slots=True)
class Deny:
    """The check objects. ``code`` is a stable reason code; ``evidence`` never holds the
    offending values themselves (types, offsets and counts only)."""

    code: str
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=_empty)
    kind: Literal["deny"] = "deny"


@dataclass(frozen=True, slots=True)
class Redaction:
    """Replace ``text[start:end]`` of the string at ``path`` with ``[REDACTED:<label>]``.

    ``path`` starts with ``"payload"`` or ``"metadata"`` and continues with keys and indexes.
    """

    path: tuple[str | int, ...]
    start: int
    end: int
    label: str


@dataclass(frozen=True, slots=True)
class Redact:
    """Allow, with the obligation to redact the listed spans from the dispatched copy."""

    redactions: tuple[Redaction, ...]
    code: str
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=_empty)
    kind: Literal["redact"] = "redact"


@dataclass(frozen=True, slots=True)
class Escalate:
    """Allow, with the obligation to raise the dispatched copy's classification to ``to``."""

    to: Classification
    code: str
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=_empty)
    kind: Literal["escalate"] = "escalate"


Decision: TypeAlias = Allow | Deny | Redact | Escalate
ALLOW = Allow()


# The W3C trace-context header value: version-traceid-parentid-flags, lower-case hex.
_W3C_TRACEPARENT: Final = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


#: One personal-data match: the string's path, the entity type, start and end offsets.
PiiHit: TypeAlias = tuple[tuple[str | int, ...], str, int, int]


class _Match(Protocol):
    @property
    def entity(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...


class _Finder(Protocol):
    def find(self, text: str) -> Sequence[_Match]: ...


class MessageScan:
    """Facts about a message computed once per dispatch and shared by every check.

    Everything is lazy: a policy that never asks for the text never pays for it.
    """

    __slots__ = ("_payload_json", "_pii", "_size", "_strings", "_text", "message")

    def __init__(self, message: Message) -> None:
        self.message = message
        self._pii: dict[int, list[PiiHit]] | None = None
        self._payload_json: bytes | None = None
        self._size: int | None = None
        self._strings: tuple[tuple[tuple[str | int, ...], str], ...] | None = None
        self._text: str | None = None

    @property
    def payload_json(self) -> bytes:
        """The payload as compact JSON with sorted keys (what the audit log hashes)."""
        if self._payload_json is None:
            self._payload_json = orjson.dumps(self.message.payload, option=orjson.OPT_SORT_KEYS)
        return self._payload_json

    def pii_hits(self, detector: _Finder) -> list[PiiHit]:
        """Every match of ``detector`` in :attr:`strings` as ``(path, entity, start, end)``,
        found once per detector and dispatch: the ``pii`` checks and the audit log's
        ``redacted`` payload storage share them."""
        cache = self._pii
        if cache is None:
            cache = self._pii = {}
        hits = cache.get(id(detector))
        if hits is None:
            find = detector.find
            hits = cache[id(detector)] = [
                (path, m.entity, m.start, m.end) for path, text in self.strings for m in find(text)
            ]
        return hits

    @property
    def content_size(self) -> int:
        """Bytes of the message's content: payload and metadata as compact JSON.

        The envelope's other fields are bounded by the envelope schema, so this is what can
        grow; it costs a fraction of serializing the whole envelope.
        """
        if self._size is None:
            self._size = len(self.payload_json) + len(orjson.dumps(self.message.metadata))
        return self._size

    @property
    def wire_size(self) -> int:
        """Exact size in bytes of the envelope's wire form (serializes the whole envelope)."""
        return len(self.message.to_json())

    @property
    def strings(self) -> tuple[tuple[tuple[str | int, ...], str], ...]:
        """Every string in the payload (nested) and every metadata value, with its path.

        A well-formed W3C ``traceparent`` is left out: made only of hex digits and dashes, it
        can hold neither personal data nor instructions, and every message carries one, so
        content detectors would otherwise scan it (and decode its hex) on every hop.
        """
        if self._strings is None:
            found: list[tuple[tuple[str | int, ...], str]] = []
            _walk(self.message.payload, ("payload",), found)
            for key, value in self.message.metadata.items():
                if key == TRACEPARENT and _W3C_TRACEPARENT.fullmatch(value):
                    continue
                found.append((("metadata", key), value))
            self._strings = tuple(found)
        return self._strings

    @property
    def text(self) -> str:
        """All strings joined by newlines: one buffer for detectors to scan once."""
        if self._text is None:
            self._text = "\n".join(s for _, s in self.strings)
        return self._text


def _walk(
    value: Any, path: tuple[str | int, ...], out: list[tuple[tuple[str | int, ...], str]]
) -> None:
    if isinstance(value, str):
        out.append((path, value))
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, (*path, key), out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, (*path, index), out)


class CheckInput(NamedTuple):
    """The one object every check receives (immutable; a NamedTuple because one is built per
    recipient per hop, and tuples build several times faster than frozen dataclasses).

    Attributes:
        message: the envelope as it stands before obligations are applied.
        recipient: the card of the agent it is about to reach, or None for a client address.
        sender: the card of the sending agent, or None when a client sent it.
        now: the orchestrator's clock reading for this evaluation (UTC).
        scan: shared lazily computed facts (size, strings, text).
        cause: the message that caused this one, when it is an agent's output.
        attrs: extension point for context that later layers add.
    """

    message: Message
    recipient: AgentCard | None
    sender: AgentCard | None
    now: datetime
    scan: MessageScan
    cause: Message | None = None
    attrs: Mapping[str, Any] = _EMPTY


CheckFn: TypeAlias = Callable[[CheckInput], Decision]

#: Outcome of one check inside one evaluation, as recorded in the audit log.
CheckOutcome: TypeAlias = Literal[
    "allow",
    "deny",
    "would_deny",
    "redact",
    "would_redact",
    "escalate",
    "would_escalate",
    "skipped",
]


class CheckResult(NamedTuple):
    """One check's outcome inside one evaluation (a NamedTuple: built per check per hop)."""

    check_id: str
    kind: str
    outcome: CheckOutcome
    code: str | None = None
    reason: str | None = None
    evidence: Mapping[str, Any] = _EMPTY
    duration_ns: int = 0

    def as_record(self) -> dict[str, Any]:
        """A JSON-ready dict for the audit log (no payload text by construction)."""
        out: dict[str, Any] = {"id": self.check_id, "kind": self.kind, "outcome": self.outcome}
        if self.code is not None:
            out["code"] = self.code
        if self.evidence:
            out["evidence"] = dict(self.evidence)
        return out


class Evaluation(NamedTuple):
    """The composite's verdict for one message and one recipient."""

    allowed: bool
    message: Message
    results: tuple[CheckResult, ...]
    deciding: CheckResult | None = None
    obligations: tuple[str, ...] = ()

    @property
    def would_deny(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.outcome == "would_deny")
