"""The ``Message`` envelope, its classification order and the acting principal.

The JSON form of :class:`Message` is the wire format on every bus. Field names follow the
specification (``from``/``to`` on the wire; ``sender``/``to`` in Python because ``from`` is a
keyword).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from govbus.envelope.ids import new_id
from govbus.envelope.ranked import RankedStrEnum
from govbus.errors import EnvelopeError

SPEC_VERSION: Final = "govbus/1"

#: Metadata keys with a meaning to govbus itself.
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
DEGRADED: Final = "degraded"
FALLBACK_CAUSE: Final = "fallback_cause"
FALLBACK_OF: Final = "fallback_of"
POLICY_SHA256: Final = "policy_sha256"
REPLY_TO: Final = "reply_to"

#: What a message type looks like: dotted lowercase segments (``portfolio.analyze``).
MESSAGE_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$"


class Classification(RankedStrEnum):
    """Data classification, ordered ``public < internal < pii < secret``.

    >>> Classification.PII > Classification.INTERNAL
    True
    """

    PUBLIC = "public"
    INTERNAL = "internal"
    PII = "pii"
    SECRET = "secret"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone (RFC 3339, e.g. 2026-11-21T10:00:00Z)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]


def _now() -> datetime:
    return datetime.now(UTC)


class Actor(BaseModel):
    """The principal on whose behalf a message travels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = Field(min_length=1, max_length=256)
    roles: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        default=(), max_length=64
    )
    tenant: str | None = Field(default=None, max_length=128)

    def has_any_role(self, roles: frozenset[str] | set[str]) -> bool:
        return not roles.isdisjoint(self.roles)


class Message(BaseModel):
    """A typed, classified envelope. Frozen: derive new messages with :meth:`reply`,
    :meth:`caused` or :meth:`evolve`.

    Every field but ``payload`` and ``metadata`` has a hard size bound, so the ``length``
    check's content measure (payload plus metadata) bounds the whole envelope.

    Frozen means the fields cannot be reassigned; the ``payload`` and ``metadata`` dicts are
    not deep-frozen (that would cost every hop a copy). On the in-memory bus the same objects
    reach the recipient, so never mutate a payload you sent or received: build a new message.

    Example:
        >>> m = Message(type="portfolio.analyze", sender="web", payload={"account": "A-1"})
        >>> r = m.reply("portfolio.analysis", {"ok": True}, sender="analyzer")
        >>> (r.to, r.causation_id == m.id, r.correlation_id == m.id)
        ('web', True, True)
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    spec: Literal["govbus/1"] = SPEC_VERSION
    id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    type: str = Field(pattern=MESSAGE_TYPE_PATTERN, max_length=200)
    sender: str = Field(alias="from", min_length=1, max_length=200)
    to: str | None = Field(default=None, min_length=1, max_length=200)
    classification: Classification = Classification.INTERNAL
    payload: dict[str, Any] = Field(default_factory=dict)
    actor: Actor | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, max_length=128)
    causation_id: str | None = Field(default=None, max_length=128)
    created_at: UtcDatetime = Field(default_factory=_now)
    deadline: UtcDatetime | None = None
    attempt: int = Field(default=1, ge=1)
    signature: str | None = Field(default=None, max_length=1024)

    # -- wire format ---------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: bytes | str) -> Message:
        """Parse and validate a wire-format envelope; raise :class:`EnvelopeError` if bad."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"envelope is not valid JSON: {exc}") from None
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: object) -> Message:
        """Validate a decoded envelope; raise :class:`EnvelopeError` naming each bad field."""
        if not isinstance(raw, dict):
            raise EnvelopeError(f"envelope must be a JSON object, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or '<envelope>'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            ]
            ident = raw.get("id") if isinstance(raw.get("id"), str) else None
            where = f" (id {ident})" if ident else ""
            raise EnvelopeError(f"malformed envelope{where}", problems) from None

    def to_json(self) -> bytes:
        """The wire form (UTF-8 JSON bytes)."""
        return self.__pydantic_serializer__.to_json(self, by_alias=True, exclude_none=False)

    # -- canonical form ------------------------------------------------------------------------

    def canonical(self) -> bytes:
        """Sorted keys, no insignificant whitespace; ``signature`` and ``attempt`` left out.

        ``attempt`` is transport state set by the bus on redelivery, so it is excluded: the
        canonical form (and so the signature and the audit hash) is stable across deliveries.
        """
        return orjson.dumps(
            self.model_dump(mode="json", by_alias=True, exclude=_NON_CANONICAL),
            option=orjson.OPT_SORT_KEYS,
        )

    def digest(self) -> str:
        """Hex sha256 of :meth:`canonical`."""
        return hashlib.sha256(self.canonical()).hexdigest()

    # -- derivation ----------------------------------------------------------------------------

    def caused(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        sender: str | None = None,
        to: str | None = None,
        classification: Classification | str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """A new message caused by this one: same conversation, actor and deadline, and this
        message's classification unless another is asked for.

        Asking for a lower classification is a request, not a right: the orchestrator raises
        the message back to its cause's level unless a ``declassify`` rule permits it.
        """
        level = (
            Classification(classification) if classification is not None else self.classification
        )
        meta = {k: v for k, v in self.metadata.items() if k in _INHERITED_METADATA}
        if metadata:
            meta.update(metadata)
        return Message(
            type=type,
            sender=sender or self.to or self.sender,
            to=to,
            classification=level,
            payload=payload or {},
            actor=self.actor,
            metadata=meta,
            correlation_id=self.correlation_id or self.id,
            causation_id=self.id,
            deadline=self.deadline,
        )

    def reply(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        sender: str | None = None,
        classification: Classification | str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Message:
        """A reply addressed to this message's sender (see :meth:`caused`)."""
        return self.caused(
            type,
            payload,
            sender=sender,
            to=self.sender,
            classification=classification,
            metadata=metadata,
        )

    def evolve(self, **changes: Any) -> Message:
        """A validated copy with ``changes`` applied (use field names, e.g. ``sender=``)."""
        data = self.model_dump(by_alias=False)
        data.update(changes)
        return Message.model_validate(data)

    def with_metadata(self, **entries: str) -> Message:
        """A copy with metadata entries added or replaced (values must be strings)."""
        for key, value in entries.items():
            if not isinstance(value, str):
                raise TypeError(f"metadata value for {key!r} must be str, got {type(value)}")
        return self.model_copy(update={"metadata": {**self.metadata, **entries}})

    # -- time ----------------------------------------------------------------------------------

    def remaining(self, now: datetime | None = None) -> float | None:
        """Seconds until the deadline (may be negative), or None without a deadline."""
        if self.deadline is None:
            return None
        return (self.deadline - (now or _now())).total_seconds()

    def with_deadline_in(self, seconds: float) -> Message:
        """A copy whose deadline is ``seconds`` from now."""
        return self.model_copy(update={"deadline": _now() + timedelta(seconds=seconds)})


_NON_CANONICAL: Final = {"signature", "attempt"}
#: Metadata a caused message inherits. Degradation markers are not here: the orchestrator
#: propagates them, because it knows whether a result really came from a fallback.
_INHERITED_METADATA: Final = frozenset({TRACEPARENT, TRACESTATE, "residency", "consent", "purpose"})
