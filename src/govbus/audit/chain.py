"""The audit hash chain: canonical record bytes, hashing and verification.

Each record's hash covers the previous record's hash and the record's own fields::

    hash = sha256(prev_hash_hex_ascii + canonical_json(record fields except ``hash``))

``canonical_json`` is ``orjson.dumps(fields, option=OPT_SORT_KEYS)`` with the timestamp as an
RFC 3339 UTC string with microseconds and ``Z`` (``2026-11-21T10:00:00.000000Z``). The first
record of a chain (``seq`` 1) has ``prev_hash`` :data:`GENESIS_HASH`. Any store that produces
records with :func:`chain_row` can be checked with :func:`verify_records`, so the SQL store, the
in-memory store and the CLI share one definition of "intact".

This module is pure (no I/O) and imports nothing from the rest of govbus except the audit types.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from govbus.audit.base import GENESIS_HASH, AuditCheckpoint, AuditEvent, AuditRecord, VerifyReport

__all__ = [
    "HASHED_FIELDS",
    "PRUNE_OUTCOME",
    "RECORD_COLUMNS",
    "ChainVerifier",
    "canonical_bytes",
    "chain_row",
    "checkpoints_digest",
    "default_node_name",
    "format_ts",
    "parse_ts",
    "record_fields",
    "record_hash",
    "row_problem",
    "row_to_record",
    "verify_records",
]

#: The record fields a hash covers, i.e. every :class:`AuditRecord` field except ``hash``.
HASHED_FIELDS: tuple[str, ...] = (
    "node",
    "seq",
    "ts",
    "kind",
    "outcome",
    "message_id",
    "correlation_id",
    "msg_type",
    "sender",
    "recipient",
    "policy_sha256",
    "data",
    "prev_hash",
)

#: The columns of a stored record, in the order storage rows (tuples) hold them.
RECORD_COLUMNS: tuple[str, ...] = (*HASHED_FIELDS, "hash")

_SORT_KEYS = orjson.OPT_SORT_KEYS
_OPTIONAL_TEXT = (
    "message_id",
    "correlation_id",
    "msg_type",
    "sender",
    "recipient",
    "policy_sha256",
)


def default_node_name() -> str:
    """Return ``"<hostname>-<pid>"``, the default chain (node) name of a writer.

    One chain per writer process: two processes appending to one chain would race for the next
    sequence number, so each process gets its own chain and a restart starts a new one. Set an
    explicit node name to continue a chain across restarts of a single writer.
    """
    return f"{socket.gethostname()}-{os.getpid()}"


_TS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def format_ts(ts: datetime) -> str:
    """Format ``ts`` as the canonical RFC 3339 UTC string with microseconds and ``Z``.

    A naive datetime is taken to be UTC already (the runtime only produces aware UTC times).

    Example:
        >>> format_ts(datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
        '2026-11-21T10:00:00.000000Z'
    """
    offset = ts.utcoffset()
    if offset:
        ts = (ts - offset).replace(tzinfo=None)
    # orjson formats a datetime in a third of the time isoformat() takes; it leaves out a zero
    # fraction, which we put back so every timestamp has the same shape (and sorts as text).
    text = orjson.dumps(ts, option=_TS_OPTIONS)[1:-1].decode()
    if len(text) == 27:
        return text
    if len(text) == 20:
        return text[:-1] + ".000000Z"
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"  # pragma: no cover


def parse_ts(text: str) -> datetime:
    """Parse a timestamp written by :func:`format_ts` back into an aware UTC datetime."""
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _json_default(obj: Any) -> Any:
    # orjson handles the JSON-ready types natively; these cover harmless look-alikes so an
    # event with, say, a MappingProxyType or a set does not stall the writer.
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON bytes of ``fields`` (sorted keys, compact, UTF-8)."""
    return orjson.dumps(fields, option=_SORT_KEYS, default=_json_default)


def record_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Return the hex sha256 chaining ``fields`` onto ``prev_hash``.

    Args:
        prev_hash: the previous record's hash (64 hex characters), or ``GENESIS_HASH``.
        fields: the record's fields (see :data:`HASHED_FIELDS`) with ``ts`` already formatted by
            :func:`format_ts`; a ``hash`` key, if present, is ignored.
    """
    if "hash" in fields:
        fields = {k: v for k, v in fields.items() if k != "hash"}
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical_bytes(fields))
    return digest.hexdigest()


def record_fields(record: AuditRecord) -> dict[str, Any]:
    """Return the hashed fields of a stored record, in canonical (JSON-ready) form."""
    return {
        "node": record.node,
        "seq": record.seq,
        "ts": format_ts(record.ts),
        "kind": record.kind,
        "outcome": record.outcome,
        "message_id": record.message_id,
        "correlation_id": record.correlation_id,
        "msg_type": record.msg_type,
        "sender": record.sender,
        "recipient": record.recipient,
        "policy_sha256": record.policy_sha256,
        "data": record.data,
        "prev_hash": record.prev_hash,
    }


def chain_row(
    node: str, seq: int, prev_hash: str, event: AuditEvent, *, coerce: bool = False
) -> dict[str, Any]:
    """Seal ``event`` as record ``seq`` of chain ``node`` and return it as a storage row.

    The row has one key per :class:`AuditRecord` field; ``ts`` is the canonical string and
    ``data`` the canonical JSON text, exactly the bytes the hash covers, so reading the row back
    and recomputing gives the same hash. Values that are not what :class:`AuditEvent` promises
    (a UUID for ``message_id``, an unserializable ``data`` value) are coerced rather than
    rejected: the writer runs off the hot path and must never stall or drop an event.

    Args:
        coerce: take the slow path that also replaces NUL characters in text fields (which
            PostgreSQL refuses), noting it in ``data``. Writers retry a batch the database
            rejected this way; for ordinary values both paths give the same row.
    """
    row = None
    if not coerce:
        try:
            row = _fast_fields(node, seq, prev_hash, event)
        except Exception:  # an odd value; the slow path coerces everything explicitly
            row = None
    if row is None:
        row = _coerced_fields(node, seq, prev_hash, event)
    data_json: bytes = row["data"]
    row["data"] = orjson.Fragment(data_json)
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(orjson.dumps(row, option=_SORT_KEYS))
    row["data"] = data_json.decode()
    row["hash"] = digest.hexdigest()
    return row


def _fast_fields(node: str, seq: int, prev_hash: str, event: AuditEvent) -> dict[str, Any]:
    kind, outcome = event.kind, event.outcome
    mid, cid, mtype = event.message_id, event.correlation_id, event.msg_type
    sender, recipient, policy = event.sender, event.recipient, event.policy_sha256
    # Exact-type checks are cheap and keep non-str values (enums, UUIDs) off the fast path: the
    # database drivers would store them differently from how orjson hashes them.
    if not (
        type(kind) is str
        and type(outcome) is str
        and (mid is None or type(mid) is str)
        and (cid is None or type(cid) is str)
        and (mtype is None or type(mtype) is str)
        and (sender is None or type(sender) is str)
        and (recipient is None or type(recipient) is str)
        and (policy is None or type(policy) is str)
    ):
        raise TypeError("non-str text field")
    return {
        "node": node,
        "seq": seq,
        "ts": format_ts(event.ts),
        "kind": kind,
        "outcome": outcome,
        "message_id": mid,
        "correlation_id": cid,
        "msg_type": mtype,
        "sender": sender,
        "recipient": recipient,
        "policy_sha256": policy,
        "data": orjson.dumps(_with_payload_hash(event), option=_SORT_KEYS, default=_json_default),
        "prev_hash": prev_hash,
    }


def _text(value: object) -> str:
    # str.__str__ strips str subclasses (e.g. a str-Enum, whose str() is "Cls.member").
    if isinstance(value, str):
        return str.__str__(value)
    try:
        return str(value)
    except Exception:  # a broken __str__ must not stall the writer
        return f"<unprintable {type(value).__name__}>"


def _with_payload_hash(event: AuditEvent) -> Any:
    """``event.data``, plus the payload's sha256 when the event carries the payload bytes."""
    payload = event.payload
    if payload is None:
        return event.data
    digest = hashlib.sha256(payload if isinstance(payload, bytes) else bytes(payload))
    return {**event.data, "payload_sha256": digest.hexdigest()}


def _coerced_fields(node: str, seq: int, prev_hash: str, event: AuditEvent) -> dict[str, Any]:
    notes: dict[str, str] = {}
    try:
        ts_text = format_ts(event.ts)
    except Exception as exc:  # not a datetime, or out of range once converted to UTC
        notes["govbus_audit_note_ts"] = f"event ts unusable ({exc}); recorded the write time"
        ts_text = format_ts(datetime.now(UTC))
    try:
        data = orjson.dumps(_with_payload_hash(event), option=_SORT_KEYS, default=_json_default)
    except TypeError as exc:
        notes["govbus_audit_note_data"] = f"event data not JSON-serializable: {exc}"
        data = b"{}"
    row: dict[str, Any] = {
        "node": node,
        "seq": seq,
        "ts": ts_text,
        "kind": "" if event.kind is None else _text(event.kind),
        "outcome": "" if event.outcome is None else _text(event.outcome),
        "prev_hash": prev_hash,
    }
    for name in _OPTIONAL_TEXT:
        value = getattr(event, name)
        row[name] = None if value is None else _text(value)
    cleaned = [name for name in ("kind", "outcome", *_OPTIONAL_TEXT) if "\x00" in (row[name] or "")]
    for name in cleaned:
        row[name] = row[name].replace("\x00", "\ufffd")
    if cleaned:
        notes["govbus_audit_note_text"] = f"NUL characters replaced in {', '.join(cleaned)}"
    if notes:
        merged = {**orjson.loads(data), **notes} if data.startswith(b"{") else notes
        data = orjson.dumps(merged, option=_SORT_KEYS)
    row["data"] = data
    return row


def row_to_record(row: Mapping[Any, Any]) -> AuditRecord:
    """Build an :class:`AuditRecord` from a storage row (``ts`` text, ``data`` JSON text)."""
    data = row["data"]
    return AuditRecord(
        node=row["node"],
        seq=row["seq"],
        ts=parse_ts(row["ts"]),
        kind=row["kind"],
        outcome=row["outcome"],
        message_id=row["message_id"],
        correlation_id=row["correlation_id"],
        msg_type=row["msg_type"],
        sender=row["sender"],
        recipient=row["recipient"],
        policy_sha256=row["policy_sha256"],
        data=orjson.loads(data) if data else {},
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _fast_row_hash(row: Sequence[Any]) -> str:
    """The hash of a storage row whose ``ts`` and ``data`` are the canonical text it was sealed
    with: its fields serialized as they are, ``data`` verbatim."""
    (node, seq, ts, kind, outcome, mid, cid, mtype, sender, recipient, policy, data, prev,
     _) = row  # fmt: skip
    digest = hashlib.sha256(prev.encode())
    digest.update(
        orjson.dumps(
            {
                "correlation_id": cid,
                "data": orjson.Fragment(data),
                "kind": kind,
                "message_id": mid,
                "msg_type": mtype,
                "node": node,
                "outcome": outcome,
                "policy_sha256": policy,
                "prev_hash": prev,
                "recipient": recipient,
                "sender": sender,
                "seq": seq,
                "ts": ts,
            }
        )
    )
    return digest.hexdigest()


def row_problem(row: Sequence[Any]) -> str | None:
    """Why a storage row (a tuple in :data:`RECORD_COLUMNS` order) is not intact, or None.

    Only the row itself: its hash must recompute from its fields (``prev_hash`` included).
    Whether it links to the record before it is the chain's business (:class:`ChainVerifier`).
    """
    try:
        if _fast_row_hash(row) == row[13]:
            return None
    except Exception:  # an odd stored type: decide on the record below
        pass
    try:
        record = row_to_record(dict(zip(RECORD_COLUMNS, row, strict=True)))
    except Exception as exc:
        return f"stored row cannot be read ({type(exc).__name__}: {exc}) (changed after writing?)"
    try:
        intact = record_hash(record.prev_hash, record_fields(record)) == record.hash
    except Exception:
        intact = False
    return None if intact else "hash does not match its contents (changed after writing?)"


@dataclass(slots=True)
class _ChainState:
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    count: int = 0
    #: The checkpoint this chain starts after (its first records were pruned).
    anchor: AuditCheckpoint | None = None
    #: A checkpoint whose records are still stored: the record at its seq must carry its hash.
    pending: AuditCheckpoint | None = None
    #: Where this verifier picked the chain up: ``(last_seq, last_hash)`` before its first row.
    origin: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = (self.last_seq, self.last_hash)


def _where(node: str, seq: int) -> str:
    return f"record {seq} of chain {node!r}"


#: The outcome of the admin record ``govbus audit prune`` writes for each prune step.
PRUNE_OUTCOME = "audit_prune"


def checkpoints_digest(checkpoints: Iterable[AuditCheckpoint]) -> str:
    """The sha256 of every checkpoint, as the ``audit_prune`` record of a prune step holds it.

    Canonical JSON of ``[[node, seq, hash, ts, generation, pruned_at], ...]`` sorted by node,
    so it covers every column of the checkpoints table.

    Example:
        >>> checkpoints_digest([]) == hashlib.sha256(b"[]").hexdigest()
        True
    """
    rows = sorted(
        ([c.node, c.seq, c.hash, c.ts, c.generation, c.pruned_at] for c in checkpoints),
        key=lambda row: str(row[0]),
    )
    return hashlib.sha256(orjson.dumps(rows)).hexdigest()


class ChainVerifier:
    """Incremental chain verification in constant memory per chain.

    Feed records in chain order (records of different chains may interleave) with :meth:`add`
    (or storage rows with :meth:`add_rows`, the fast path), then call :meth:`finish`.
    :func:`verify_records` is the one-call form; stores that stream from a database use this
    class directly.

    Args:
        heads: per chain, the last ``(seq, hash)`` stored separately from the records, read
            *before* the records (or in the same snapshot). Every chain must reach its head, the
            record at the head's sequence number must carry the head's hash, and every chain
            with records (or a checkpoint) must have a head. A chain may extend past its head
            (a live writer appended meanwhile).
        checkpoints: per pruned chain, its :class:`AuditCheckpoint`, read in the same snapshot as
            the records. A chain with one may start at ``checkpoint.seq + 1``, chained onto the
            checkpoint's hash, instead of at record 1 on the genesis hash. None: the store keeps
            no checkpoints (every chain must start at record 1).
        attest: also check the checkpoints against the newest ``audit_prune`` record seen among
            the records (its generation and its digest of every checkpoint). Only meaningful
            when every chain is fed, so that record can be among them.
    """

    def __init__(
        self,
        heads: Mapping[str, tuple[int, str]] | None = None,
        checkpoints: Mapping[str, AuditCheckpoint] | None = None,
        *,
        attest: bool = False,
    ) -> None:
        self._heads = heads
        self._checkpoints = checkpoints
        self._attest = attest and checkpoints is not None
        self._chains: dict[str, _ChainState] = {}
        self._records = 0
        self._broken: tuple[str, int | None, str, AuditRecord | None] | None = None
        # The audit_prune records with the highest generation seen: (generation, [records]).
        self._prunes: tuple[int, list[AuditRecord]] = (0, [])

    @property
    def broken(self) -> bool:
        """True once a problem was found; later records are ignored."""
        return self._broken is not None

    def nodes_without_head(self) -> list[str]:
        """Chains seen so far that have no entry in ``heads`` (all of them without heads)."""
        heads = self._heads or {}
        return [node for node in self._chains if node not in heads]

    def fail(self, node: str, seq: int | None, problem: str, record: AuditRecord | None) -> None:
        """Record a problem found outside the chain rules (e.g. an unreadable stored row)."""
        if self._broken is None:
            self._broken = (node, seq, problem, record)

    def _start(self, node: str, first_seq: int) -> _ChainState:
        checkpoint = self._checkpoints.get(node) if self._checkpoints else None
        if checkpoint is not None and first_seq > checkpoint.seq:
            state = _ChainState(checkpoint.seq, checkpoint.hash, anchor=checkpoint)
        else:
            # No checkpoint, or the records it says were pruned are still there (they must
            # then lead to it): verify from the genesis hash.
            state = _ChainState(pending=checkpoint)
        self._chains[node] = state
        return state

    def add(self, record: AuditRecord) -> bool:
        """Check the next record of its chain; return False once anything is broken."""
        if self._broken is not None:
            return False
        node = record.node
        state = self._chains.get(node)
        if state is None:
            state = self._start(node, record.seq)
        expected = state.last_seq + 1
        if record.seq != expected:
            if record.seq > expected:
                problem = (
                    f"{_where(node, expected)}: missing (deleted or reordered?); "
                    f"the next stored record is {record.seq}"
                )
                if expected == 1 and state.pending is not None:
                    problem += (
                        f", which its checkpoint says was pruned (up to record "
                        f"{state.pending.seq}): checkpoint moved, or records deleted?"
                    )
                elif expected == 1 and self._checkpoints is not None:
                    problem += " and no checkpoint says the records before it were pruned"
            else:
                problem = (
                    f"{_where(node, expected)}: found record {record.seq} again after record "
                    f"{state.last_seq} (duplicated or reordered?)"
                )
            self.fail(node, expected, problem, record)
            return False
        try:
            intact = record_hash(record.prev_hash, record_fields(record)) == record.hash
        except Exception:  # a field changed to something that cannot even be canonicalized
            intact = False
        if not intact:
            problem = (
                f"{_where(node, record.seq)}: hash does not match its contents "
                "(changed after writing?)"
            )
            self.fail(node, record.seq, problem, record)
            return False
        if record.prev_hash != state.last_hash:
            if state.count == 0 and state.anchor is not None:
                what = (
                    f"its checkpoint (the hash of pruned record {state.last_seq}); the checkpoint "
                    "or a record was changed"
                )
            else:
                what = (
                    "the genesis hash" if expected == 1 else f"the hash of record {state.last_seq}"
                )
                what += " (a record before it removed, replaced or reordered?)"
            problem = f"{_where(node, record.seq)}: prev_hash does not match {what}"
            self.fail(node, record.seq, problem, record)
            return False
        if self._heads is not None:
            head = self._heads.get(node)
            if head is not None and head[0] == record.seq and head[1] != record.hash:
                problem = (
                    f"{_where(node, record.seq)}: hash differs from the chain head "
                    "(chain rewritten from here?)"
                )
                self.fail(node, record.seq, problem, record)
                return False
        pending = state.pending
        if pending is not None and pending.seq == record.seq and pending.hash != record.hash:
            problem = (
                f"{_where(node, record.seq)}: hash differs from the chain's checkpoint, which "
                "says this record was pruned (checkpoint or record changed?)"
            )
            self.fail(node, record.seq, problem, record)
            return False
        state.last_seq = record.seq
        state.last_hash = record.hash
        state.count += 1
        self._records += 1
        if record.kind == "admin" and record.outcome == PRUNE_OUTCOME:
            self._note_prune(record)
        return True

    def add_row(self, row: Sequence[Any]) -> bool:
        """:meth:`add` for a storage row: a tuple in :data:`RECORD_COLUMNS` order."""
        if self._broken is not None:
            return False
        try:
            if type(row[1]) is not int:  # SQLite keeps whatever was written: 'x' stays text
                raise TypeError(f"seq {row[1]!r} is not a whole number")
            record = row_to_record(dict(zip(RECORD_COLUMNS, row, strict=True)))
        except Exception as exc:  # a stored ts or data that does not even parse
            node, seq = row[0], row[1]
            problem = (
                f"record {seq} of chain {node!r}: stored row cannot be read "
                f"({type(exc).__name__}: {exc}) (changed after writing?)"
            )
            self.fail(node, seq, problem, None)
            return False
        return self.add(record)

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> bool:
        """Check storage rows (tuples in :data:`RECORD_COLUMNS` order, chain order); the fast
        path of ``govbus audit verify``. Same rules and messages as :meth:`add`.

        A stored row holds exactly the bytes its hash covers (``ts`` as canonical text, ``data``
        as canonical JSON text), so an intact row is checked without building a record: its
        fields are serialized as they are, ``data`` verbatim. Anything else (a row out of
        sequence, at a head or checkpoint, an admin record, a hash that does not match) goes
        through :meth:`add`, which decides exactly as it always has; a row whose text was
        re-formatted without changing its meaning still verifies there.
        """
        if self._broken is not None:
            return False
        chains, heads, slow = self._chains, self._heads or {}, self.add_row
        fast_hash = _fast_row_hash
        current: str | None = None
        state = _ChainState()
        watch: tuple[int, int] = (-1, -1)  # the head's and a pending checkpoint's seq
        verified = 0
        for row in rows:
            node, seq, kind, prev, stored = row[0], row[1], row[3], row[12], row[13]
            if node != current:
                found = chains.get(node)
                if found is None:  # a chain's first row: add() starts the chain
                    self._records += verified
                    verified = 0
                    if not slow(row):
                        return False
                    continue
                state = found
                current = node
                head, pending = heads.get(node), state.pending
                watch = (
                    head[0] if head is not None else -1,
                    pending.seq if pending is not None else -1,
                )
            if (
                seq != state.last_seq + 1
                or prev != state.last_hash
                or seq in watch
                or kind == "admin"
            ):
                self._records += verified
                verified = 0
                if not slow(row):
                    return False
                continue
            try:
                intact = fast_hash(row) == stored
            except Exception:  # an odd stored type: let add() decide
                intact = False
            if not intact:
                self._records += verified
                verified = 0
                if not slow(row):
                    return False
                continue
            state.last_seq = seq
            state.last_hash = stored
            state.count += 1
            verified += 1
        self._records += verified
        return True

    # -- segments: verifying ranges of the chains in parallel (govbus.audit.parallel) ---------

    def seed(self, node: str, seq: int, prev_hash: str) -> None:
        """Start ``node`` as if its record ``seq - 1`` had hash ``prev_hash``: a range of rows
        that begins inside the chain. Whoever joins the ranges checks that link
        (:meth:`add_segment`)."""
        self._chains[node] = _ChainState(seq - 1, prev_hash)

    def segments(self) -> list[tuple[str, int, str, int, str, int]]:
        """Per chain with records seen: ``(node, first_seq, first_prev, last_seq, last_hash,
        count)``, for :meth:`add_segment` in the verifier that joins the ranges."""
        out = []
        for node, state in self._chains.items():
            if state.count and state.origin is not None:
                seq, prev = state.origin
                out.append((node, seq + 1, prev, state.last_seq, state.last_hash, state.count))
        return out

    def add_segment(
        self, node: str, first_seq: int, first_prev: str, last_seq: int, last_hash: str, count: int
    ) -> bool:
        """Take ``count`` records of ``node`` verified elsewhere, from ``first_seq`` (whose
        ``prev_hash`` is ``first_prev``) to ``last_seq`` (hash ``last_hash``): they must continue
        the chain exactly where it stands (or start it on the genesis hash or its checkpoint).

        Returns False, recording nothing, when they do not, or when the chain's checkpoint is one
        whose records are still stored; the caller then verifies row by row for the exact report.
        """
        if self._broken is not None:
            return False
        state = self._chains.get(node)
        if state is None:
            checkpoint = self._checkpoints.get(node) if self._checkpoints else None
            if checkpoint is not None and first_seq <= checkpoint.seq:
                return False
            state = _ChainState(
                checkpoint.seq if checkpoint is not None else 0,
                checkpoint.hash if checkpoint is not None else GENESIS_HASH,
                anchor=checkpoint,
            )
        if first_seq != state.last_seq + 1 or first_prev != state.last_hash:
            return False
        if last_seq != first_seq + count - 1:
            return False
        state.last_seq, state.last_hash = last_seq, last_hash
        state.count += count
        self._chains[node] = state
        self._records += count
        return True

    def prune_records(self) -> list[AuditRecord]:
        """The verified ``audit_prune`` records of the newest generation seen."""
        return list(self._prunes[1])

    def add_prune_records(self, records: Iterable[AuditRecord]) -> None:
        """Count ``audit_prune`` records verified elsewhere towards the attestation check."""
        for record in records:
            self._note_prune(record)

    def _note_prune(self, record: AuditRecord) -> None:
        generation = record.data.get("generation")
        if type(generation) is not int:
            return
        best, records = self._prunes
        if generation > best:
            self._prunes = (generation, [record])
        elif generation == best:
            records.append(record)

    def _check_heads(self, late_heads: Mapping[str, tuple[int, str]] | None) -> None:
        heads = self._heads
        if heads is None:
            return
        checkpoints = self._checkpoints or {}
        for node, (seq, head_hash) in sorted(heads.items()):
            state = self._chains.get(node)
            checkpoint = checkpoints.get(node)
            if state is not None:
                last = state.last_seq
                anchor = state.anchor
            else:  # no records: fully pruned (or every record deleted)
                last = checkpoint.seq if checkpoint is not None else 0
                anchor = checkpoint
            if last < seq:
                problem = (
                    f"{_where(node, last + 1)}: missing (tail deleted?); the chain ends at "
                    f"record {last} but its head is record {seq}"
                )
                self.fail(node, last + 1, problem, None)
                return
            if anchor is not None and (
                seq < anchor.seq or (seq == anchor.seq and head_hash != anchor.hash)
            ):
                problem = (
                    f"chain {node!r}: its head (record {seq}) does not match its checkpoint "
                    f"(pruned up to record {anchor.seq}); head or checkpoint changed"
                )
                self.fail(node, seq, problem, None)
                return
        late = late_heads or {}
        for node in sorted(self.nodes_without_head()):
            if node not in late:
                problem = (
                    f"chain {node!r} has {self._chains[node].count} records but no head "
                    "(head deleted, and maybe the tail with it?)"
                )
                self.fail(node, None, problem, None)
                return
        for node in sorted(checkpoints):
            if node not in heads and node not in late:
                problem = (
                    f"chain {node!r} has a checkpoint (pruned up to record "
                    f"{checkpoints[node].seq}) but no head (head deleted?)"
                )
                self.fail(node, None, problem, None)
                return

    def _check_pending(self) -> None:
        for node, state in sorted(self._chains.items()):
            pending = state.pending
            if pending is not None and state.last_seq < pending.seq:
                problem = (
                    f"{_where(node, state.last_seq + 1)}: missing; the chain stops at record "
                    f"{state.last_seq} but its checkpoint says records up to {pending.seq} "
                    "were pruned"
                )
                self.fail(node, state.last_seq + 1, problem, None)
                return

    def _check_attestation(self) -> None:
        """The checkpoints must be exactly what the newest ``audit_prune`` record attests."""
        checkpoints = self._checkpoints or {}
        written = max((c.generation for c in checkpoints.values()), default=0)
        newest, records = self._prunes
        if written == 0 and newest == 0:
            return
        if not records:
            newest_node = max(checkpoints.values(), key=lambda c: c.generation).node
            problem = (
                f"checkpoints were written by prune generation {written} but no audit_prune "
                "record attests them (checkpoint forged, or its audit_prune record removed?)"
            )
            self.fail(newest_node, None, problem, None)
            return
        record = records[0]
        where = _where(record.node, record.seq)
        if written != newest:
            problem = (
                f"the newest audit_prune record ({where}) is prune generation {newest} but the "
                f"checkpoints were last written by generation {written} (a checkpoint "
                f"{'forged' if written > newest else 'removed or rolled back'}?)"
            )
            self.fail(record.node, record.seq, problem, record)
            return
        digest = checkpoints_digest(checkpoints.values())
        for record in records:
            if record.data.get("checkpoints_sha256") != digest:
                problem = (
                    f"the checkpoints do not match the digest in the audit_prune record of "
                    f"generation {newest} ({_where(record.node, record.seq)}): a checkpoint was "
                    "changed, added or removed"
                )
                self.fail(record.node, record.seq, problem, record)
                return

    def finish(self, *, late_heads: Mapping[str, tuple[int, str]] | None = None) -> VerifyReport:
        """Check that every chain reaches its head (and, with ``attest``, that the checkpoints
        are the attested ones) and return the report.

        Args:
            late_heads: heads read *after* the records, for chains without an entry in the
                constructor's ``heads`` (a writer that started while the records were read).
                Such a chain only needs a head; it may end short of it (it grew meanwhile).
        """
        if self._broken is None:
            self._check_heads(late_heads)
        if self._broken is None:
            self._check_pending()
        if self._broken is None and self._attest:
            self._check_attestation()
        chains = {node: state.count for node, state in self._chains.items()}
        pruned = {node: c.seq for node, c in (self._checkpoints or {}).items()}
        if self._broken is None:
            return VerifyReport(ok=True, records=self._records, chains=chains, pruned=pruned)
        node, broken_seq, problem, record = self._broken
        return VerifyReport(
            ok=False,
            records=self._records,
            chains=chains,
            first_broken=record,
            node=node,
            seq=broken_seq,
            problem=problem,
            pruned=pruned,
        )


def verify_records(
    records: Iterable[AuditRecord],
    heads: Mapping[str, tuple[int, str]] | None = None,
    checkpoints: Mapping[str, AuditCheckpoint] | None = None,
) -> VerifyReport:
    """Verify chained records and report the first changed, missing or reordered one.

    Records must come in chain order (sequence 1, 2, ...); several chains may interleave. Per
    chain, sequence numbers must start at 1 without gaps, each hash must recompute from the
    record's contents, and each ``prev_hash`` must be the previous record's hash
    (:data:`GENESIS_HASH` for record 1). Reading stops at the first problem.

    Args:
        records: the stored records, e.g. ``store.stored`` or rows read from a database.
        heads: per chain, the last ``(seq, hash)`` stored separately. Without heads a deleted tail
            cannot be noticed; with them, a chain that stops short of its head, whose record at
            the head's sequence number has another hash, or that has no head, is broken.
        checkpoints: per pruned chain, where it now starts (see :class:`ChainVerifier`); they
            are checked against the newest ``audit_prune`` record among ``records``.

    Returns:
        A report; when broken, ``node`` and ``seq`` name the first broken position (for a
        deletion, the first missing sequence number), ``first_broken`` is the stored record
        where the break was seen (None for a deleted tail) and ``problem`` says what is wrong,
        e.g. ``record 17 of chain 'host-1': hash does not match its contents (changed after
        writing?)``. ``records`` counts the records verified before the first problem.

    Example:
        >>> verify_records([]).ok
        True
    """
    verifier = ChainVerifier(heads, checkpoints, attest=True)
    for record in records:
        if not verifier.add(record):
            break
    return verifier.finish()
