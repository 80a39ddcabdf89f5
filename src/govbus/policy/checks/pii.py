"""``pii``: find personal data and secrets in every string of a message.

```yaml
- id: pii-in-clear
  use: pii
  entities: [email, phone, credit_card, iban, pan_in, aadhaar, us_ssn, secrets]  # default: all
  allow_at: pii        # PII is fine in messages already classified pii or above
  action: deny         # deny (default) | redact | escalate (raise the classification to pii)
  scan: payload_and_metadata
```

Every string in the payload (nested) and every metadata value is scanned by a
:class:`~govbus.policy.pii.PiiDetector` built once at load time. The evidence names entity
types, counts and offsets, never the values, so the audit log does not become a second copy of
the data the check exists to keep out.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field

from govbus.envelope import Classification
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.pii import ENTITIES, PiiDetector, PiiEntity
from govbus.policy.types import (
    ALLOW,
    CheckFn,
    CheckInput,
    Decision,
    Deny,
    Escalate,
    PiiHit,
    Redact,
    Redaction,
)

#: Evidence lists at most this many locations (the counts stay complete), so one message full
#: of numbers cannot bloat its audit record.
MAX_LOCATIONS: Final = 100


class PiiParams(CheckParams):
    """Parameters of ``pii``.

    Attributes:
        entities: the entity types to look for (default: every one).
        allow_at: messages classified at this level or above are allowed without scanning.
        action: ``deny`` the message, ``redact`` the matches from the dispatched copy, or
            ``escalate`` its classification to ``pii``.
        scan: what to scan; only ``payload_and_metadata`` for now.
    """

    entities: list[PiiEntity] = Field(default_factory=lambda: list(ENTITIES), min_length=1)
    allow_at: Classification | None = None
    action: Literal["deny", "redact", "escalate"] = "deny"
    scan: Literal["payload_and_metadata"] = "payload_and_metadata"


@CHECK_KINDS.register(
    "pii",
    params=PiiParams,
    summary=(
        "Find personal data and secrets (emails, phones, card numbers, IBANs, national ids, "
        "IP addresses, keys and tokens) in the payload and metadata, then deny, redact or "
        "escalate."
    ),
)
def build(params: PiiParams, ctx: LoadContext) -> CheckFn:
    """Build the ``pii`` check (the detector is compiled here, once)."""
    detector = PiiDetector(params.entities)
    allow_rank = params.allow_at.rank if params.allow_at is not None else None
    action = params.action

    def pii(inp: CheckInput) -> Decision:
        if allow_rank is not None and inp.message.classification.rank >= allow_rank:
            return ALLOW
        hits = inp.scan.pii_hits(detector)
        if not hits:
            return ALLOW
        evidence = _evidence(hits)
        kinds = ", ".join(sorted(evidence["entities"]))
        if action == "redact":
            return Redact(
                tuple(Redaction(path, s, e, entity) for path, entity, s, e in hits),
                "pii_detected",
                f"redacted personal data: {kinds}",
                evidence,
            )
        if action == "escalate":
            return Escalate(
                Classification.PII,
                "pii_detected",
                f"message carries personal data ({kinds}); classification raised to pii",
                evidence,
            )
        return Deny("pii_detected", f"message carries personal data: {kinds}", evidence)

    # The audit log's ``redacted`` payload storage redacts with this same detector, so it
    # reuses the matches this check found (MessageScan.pii_hits caches them per detector).
    pii.detector = detector  # type: ignore[attr-defined]
    return pii


def _evidence(hits: list[PiiHit]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for _, entity, _, _ in hits:
        counts[entity] = counts.get(entity, 0) + 1
    evidence: dict[str, Any] = {
        "entities": counts,
        "locations": [
            {"path": ".".join(map(str, path)), "entity": entity, "start": s, "end": e}
            for path, entity, s, e in hits[:MAX_LOCATIONS]
        ],
    }
    if len(hits) > MAX_LOCATIONS:
        evidence["locations_omitted"] = len(hits) - MAX_LOCATIONS
    return evidence
