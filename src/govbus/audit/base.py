"""Audit events, stored records and the ``AuditStore`` protocol.

The orchestrator builds an :class:`AuditEvent` per decision, delivery, fallback and failure and
hands it to the store without waiting (``durability: batch``) or waiting for its commit
(``durability: sync``, group-committed). The store assigns each event a per-node sequence number
and chains it: ``hash = sha256(prev_hash + canonical(record without hash))``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias

Durability: TypeAlias = Literal["batch", "sync"]

#: Kinds of audit events the runtime writes.
EventKind: TypeAlias = Literal[
    "decision",  # a policy evaluation for one recipient (allow, deny, would_deny)
    "delivery",  # a handler ran: outcome ok | timeout | exception
    "fallback",  # a failed delivery was re-sent to the agent's fallback
    "failure",  # a message ended in govbus.failed
    "rejected",  # ingress rejected an envelope (malformed, bad signature)
    "no_route",  # nobody handles the message type
    "admin",  # pause/resume, policy load, start/stop
]

GENESIS_HASH = "0" * 64


class AuditEvent(NamedTuple):
    """What happened, as the orchestrator reports it. JSON-ready; never payload text.

    A NamedTuple rather than a frozen dataclass: two are built per hop, and tuples build about
    three times faster.
    """

    kind: str
    ts: datetime
    outcome: str
    message_id: str | None = None
    correlation_id: str | None = None
    msg_type: str | None = None
    sender: str | None = None
    recipient: str | None = None
    policy_sha256: str | None = None
    data: Mapping[str, Any] = MappingProxyType({})
    #: The message payload as canonical JSON bytes, or None. The store records its sha256 as
    #: ``data["payload_sha256"]`` and never stores the bytes: hashing is the writer's work,
    #: off the event loop.
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored, chained audit record."""

    node: str
    seq: int
    ts: datetime
    kind: str
    outcome: str
    message_id: str | None
    correlation_id: str | None
    msg_type: str | None
    sender: str | None
    recipient: str | None
    policy_sha256: str | None
    data: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """Where a pruned chain now starts: records 1 to ``seq`` of chain ``node`` were deleted.

    ``govbus audit prune`` writes one per pruned chain (and moves it forward on later prunes).
    The first kept record, ``seq + 1``, must carry ``hash`` as its ``prev_hash``, so the rest
    of the chain still verifies. ``generation`` numbers the prune step that last moved it; the
    ``audit_prune`` record of that step holds a digest of every checkpoint (see
    :func:`govbus.audit.chain.checkpoints_digest`), so a changed, added or removed checkpoint
    is detected as long as that record is intact.
    """

    node: str
    #: The last pruned record's sequence number (= how many records were pruned).
    seq: int
    #: The last pruned record's hash: the ``prev_hash`` of record ``seq + 1``.
    hash: str
    #: The last pruned record's timestamp (canonical RFC 3339 text).
    ts: str
    #: The prune step that wrote this checkpoint (1, 2, ... across the whole store).
    generation: int
    #: When that prune step ran (canonical RFC 3339 text).
    pruned_at: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of verifying every chain in a store."""

    ok: bool
    records: int
    chains: dict[str, int]
    first_broken: AuditRecord | None = None
    node: str | None = None
    seq: int | None = None
    problem: str | None = None
    #: Per pruned chain, how many of its first records were pruned (its checkpoint's ``seq``).
    pruned: dict[str, int] = field(default_factory=dict)


class AuditStore(Protocol):
    """Append-only, hash-chained audit storage with a writer off the hot path."""

    @property
    def node(self) -> str: ...

    async def start(self) -> None:
        """Open storage, create or migrate the schema, resume this node's chain."""

    def submit(self, event: AuditEvent) -> None:
        """Queue ``event`` for the batched writer and return at once (``batch`` durability)."""

    async def write(self, event: AuditEvent) -> None:
        """Queue ``event`` and wait until it is committed (``sync`` durability)."""

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed."""

    async def close(self) -> None:
        """Flush, then release the storage."""

    def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        """Stored records ordered by node then sequence."""

    async def verify(self) -> VerifyReport:
        """Recompute every chain; report the first changed, missing or reordered record."""
