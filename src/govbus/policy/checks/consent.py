"""``consent``: personal data travels only for a stated, allowed, consented purpose.

```yaml
- id: purpose-limitation
  use: consent
  applies_at: pii                # messages classified at this level or above (default: pii)
  purposes: [advice, kyc]        # allowed purposes; empty (default) accepts any stated purpose
  ledger: true                   # also require the actor's consent for it in the consent ledger
  metadata_key: purpose          # where the purpose is stated (default: purpose)
```

The purpose is read from the message's metadata. With ``ledger: true`` the actor (the data
subject the message travels for) must have a consent for that purpose that is valid at the
evaluation's ``now`` in the process-wide consent store (see :mod:`govbus.policy.consent` and
:func:`~govbus.policy.consent.set_consent_store`). With no store configured the check denies
with ``consent_store_missing`` (fail closed); so does it, with ``no_consent``, for a message
without an actor. A store that raises is a ``check_error`` deny.

Evidence never holds the purpose text unless the policy lists the allowed purposes (then it is
one of the policy's own words); a free-form purpose is metadata a sender wrote and could carry
anything.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr

from govbus.envelope import Classification
from govbus.policy.consent import get_consent_store
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

_NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class ConsentParams(CheckParams):
    """Parameters of ``consent``.

    Attributes:
        applies_at: messages classified at this level or above need a purpose.
        purposes: the allowed purposes; empty accepts any non-blank purpose.
        ledger: when true, the actor must hold a consent for the purpose in the consent store.
        metadata_key: the metadata entry stating the purpose.
    """

    applies_at: Classification = Classification.PII
    purposes: list[_NonEmpty] = Field(default_factory=list)
    ledger: StrictBool = False
    metadata_key: _NonEmpty = "purpose"


@CHECK_KINDS.register(
    "consent",
    params=ConsentParams,
    summary=(
        "Require messages classified pii (or another level) and above to state an allowed "
        "purpose, optionally one the actor consented to in the consent ledger."
    ),
)
def build(params: ConsentParams, ctx: LoadContext) -> CheckFn:
    """Build the ``consent`` check."""
    applies_rank = params.applies_at.rank
    listed = tuple(dict.fromkeys(params.purposes))
    allowed = frozenset(listed)
    key = params.metadata_key
    ledger = params.ledger
    lookup = get_consent_store  # looked up per call: the app may set the store after loading

    def consent(inp: CheckInput) -> Decision:
        message = inp.message
        level = message.classification
        if level.rank < applies_rank:
            return ALLOW
        purpose = message.metadata.get(key)
        if purpose is None or not purpose.strip():
            return Deny(
                "missing_purpose",
                f"{level.value} message states no purpose in metadata {key!r}",
                {"classification": level.value},
            )
        if allowed and purpose not in allowed:
            return Deny(
                "purpose_not_allowed",
                "the stated purpose is not one the policy allows",
                {"classification": level.value, "allowed": list(listed)},
            )
        if not ledger:
            return ALLOW
        store = lookup()
        if store is None:
            return Deny(
                "consent_store_missing",
                "the policy checks consent against a ledger, but no consent store is configured",
                {"classification": level.value},
            )
        evidence = {"classification": level.value}
        if allowed:
            evidence["purpose"] = purpose
        actor = message.actor
        if actor is None:
            return Deny(
                "no_consent", "message has no actor whose consent could be checked", evidence
            )
        if store.has_consent(actor.subject, purpose, inp.now):
            return ALLOW
        return Deny("no_consent", "the actor has no valid consent for this purpose", evidence)

    return consent
