"""Applying a policy's obligations (redactions, raised classification) to a message.

Every check sees the same, original message, so every :class:`Redaction` offset refers to the
original string. Spans are therefore gathered per string from all checks first, and applied
right-to-left, so replacing one span never shifts the offsets of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from govbus.envelope import Classification, Message
from govbus.policy.pii import PiiDetector
from govbus.policy.types import MessageScan, Redaction

__all__ = ["apply_obligations", "redact_personal_data", "redaction_problem"]

_Path = tuple[str | int, ...]


def redaction_problem(message: Message, redaction: Redaction) -> str | None:
    """Why ``redaction`` cannot be applied to ``message``, or None when it can.

    A redaction that cannot be applied would let the text it was meant to hide through, so the
    composite treats it as a failed check (fail closed).
    """
    path = redaction.path
    if len(path) < 2 or path[0] not in ("payload", "metadata"):
        return f"redaction path {list(path)!r} must start with 'payload' or 'metadata'"
    if path[0] == "metadata" and len(path) != 2:
        return f"redaction path {list(path)!r}: metadata values are flat strings"
    value: Any = message.payload if path[0] == "payload" else message.metadata
    for part in path[1:]:
        in_dict = isinstance(value, dict) and isinstance(part, str) and part in value
        in_list = (
            isinstance(value, list | tuple)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(value)
        )
        if in_dict or in_list:
            value = value[part]
        else:
            return f"redaction path {list(path)!r} does not exist in the message"
    if not isinstance(value, str):
        return f"redaction path {list(path)!r} does not point at a string"
    if not 0 <= redaction.start < redaction.end <= len(value):
        return (
            f"redaction span {redaction.start}:{redaction.end} is outside the string "
            f"at {list(path)!r} (length {len(value)})"
        )
    return None


def apply_obligations(
    message: Message,
    redactions: Sequence[Redaction],
    classification: Classification | None,
) -> Message:
    """A copy of ``message`` with ``redactions`` applied and classification raised.

    Args:
        message: the original message (all redaction offsets refer to it).
        redactions: spans in obligation order; each must pass :func:`redaction_problem`.
        classification: the highest classification any escalation asked for, or None. The
            result's classification is never lower than the message's (it only rises).

    Overlapping spans in one string are merged so no character of either leaks; the merged span
    keeps the label of the redaction that came first in obligation order.
    """
    update: dict[str, Any] = {}
    if redactions:
        by_path: dict[_Path, list[tuple[int, int, str, int]]] = {}
        for seq, r in enumerate(redactions):
            _add_span(by_path.setdefault(r.path, []), (r.start, r.end, r.label, seq))
        payload: Any = message.payload
        metadata: dict[str, str] | None = None
        for path, spans in by_path.items():
            if path[0] == "payload":
                payload = _replace(payload, path[1:], spans)
            else:
                if metadata is None:
                    metadata = dict(message.metadata)
                key = path[1]
                assert isinstance(key, str)  # guaranteed by redaction_problem
                metadata[key] = _redact(metadata[key], spans)
        if payload is not message.payload:
            update["payload"] = payload
        if metadata is not None:
            update["metadata"] = metadata
    if classification is not None and classification > message.classification:
        update["classification"] = classification
    return message.model_copy(update=update) if update else message


def _add_span(spans: list[tuple[int, int, str, int]], span: tuple[int, int, str, int]) -> None:
    """Add ``(start, end, label, seq)``, merging overlapping spans; the lowest ``seq`` (the
    redaction that came first) gives the merged span its label."""
    start, end, label, seq = span
    for i, (s, e, other_label, other_seq) in enumerate(spans):
        if start < e and s < end:
            del spans[i]
            first = (label, seq) if seq < other_seq else (other_label, other_seq)
            _add_span(spans, (min(s, start), max(e, end), *first))
            return
    spans.append(span)


def _redact(text: str, spans: list[tuple[int, int, str, int]]) -> str:
    # Right to left: a replacement only changes text after its own start, so the offsets of the
    # spans still to do (all further left) stay valid.
    for start, end, label, _ in sorted(spans, reverse=True):
        text = f"{text[:start]}[REDACTED:{label}]{text[end:]}"
    return text


def _replace(container: Any, path: _Path, spans: list[tuple[int, int, str, int]]) -> Any:
    """Copy-on-write along ``path``: the original payload is never mutated."""
    if not path:
        return _redact(container, spans)
    head: Any = path[0]  # a str for a dict, an int for a list (checked by redaction_problem)
    rest = path[1:]
    if isinstance(container, dict):
        copy: dict[str, Any] = dict(container)
        copy[head] = _replace(container[head], rest, spans)
        return copy
    items = list(container)
    items[head] = _replace(container[head], rest, spans)
    return tuple(items) if isinstance(container, tuple) else items


def redact_personal_data(scan: MessageScan, detector: PiiDetector) -> Message:
    """The message with every match of ``detector`` in its payload and metadata replaced by
    ``[REDACTED:<entity>]``: what the audit log keeps with ``redacted`` payload storage. The
    matches are the ones the dispatch's ``pii`` checks found with the same detector (found
    once, shared); the original message is not changed.

    Example:
        >>> from govbus.envelope import Message
        >>> from govbus.policy.pii import PiiDetector
        >>> msg = Message(type="note", sender="web", payload={"text": "mail jo@example.com"})
        >>> redact_personal_data(MessageScan(msg), PiiDetector()).payload
        {'text': 'mail [REDACTED:email]'}
    """
    redactions = [
        Redaction(path, start, end, entity) for path, entity, start, end in scan.pii_hits(detector)
    ]
    if not redactions:
        return scan.message
    return apply_obligations(scan.message, redactions, None)
