"""``residency``: keep data of a classification inside the regions allowed for it.

```yaml
- id: eu-data-stays-in-eu
  use: residency
  regions:                     # classification -> allowed regions; unlisted ones are unrestricted
    pii: [eu-west, eu-central]
    secret: [eu-central]
  metadata_key: residency      # default: where the message says its data resides
  require_region: false        # true: deny a restricted message that does not say
```

For a message whose classification is listed, two things must be in the allowed list: the
region the message declares in its metadata (when it declares one), and the region of the
recipient agent's card. A recipient agent whose card declares no region is denied: data cannot be
shown to stay in a region the agent never named (fail closed). A client address has no card, so
for it only the message's own region is checked. Regions are compared exactly as written.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr

from govbus.envelope import Classification
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

_Region = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class ResidencyParams(CheckParams):
    """Parameters of ``residency``.

    Attributes:
        regions: for each restricted classification, the regions its data may be in.
        metadata_key: the metadata entry holding the message's own region.
        require_region: when true, a message of a restricted classification must declare its
            region (``missing_region`` otherwise).
    """

    regions: dict[Classification, Annotated[list[_Region], Field(min_length=1)]] = Field(
        min_length=1
    )
    metadata_key: StrictStr = Field(default="residency", min_length=1)
    require_region: StrictBool = False


@CHECK_KINDS.register(
    "residency",
    params=ResidencyParams,
    summary=(
        "Deny a message whose classification restricts it to some regions when its own region "
        "or its recipient's region is not one of them."
    ),
)
def build(params: ResidencyParams, ctx: LoadContext) -> CheckFn:
    """Build the ``residency`` check (allowed regions become frozen sets here, once)."""
    allowed_by_level = {
        level: (frozenset(regions), tuple(dict.fromkeys(regions)))
        for level, regions in params.regions.items()
    }
    key = params.metadata_key
    require_region = params.require_region

    def residency(inp: CheckInput) -> Decision:
        level = inp.message.classification
        rule = allowed_by_level.get(level)
        if rule is None:
            return ALLOW
        allowed, listed = rule
        region = inp.message.metadata.get(key) or None
        if region is None:
            if require_region:
                return Deny(
                    "missing_region",
                    f"{level.value} message does not declare its region in metadata {key!r}",
                    {"classification": level.value, "allowed": list(listed)},
                )
        elif region not in allowed:
            # The message's region is a metadata value, but it is the fact under review and is
            # bounded by the envelope, so the audit records it (never payload content).
            return Deny(
                "region_not_allowed",
                f"{level.value} data may not reside in the message's region",
                {
                    "classification": level.value,
                    "message_region": region[:64],
                    "allowed": list(listed),
                },
            )
        recipient = inp.recipient
        if recipient is None or recipient.region in allowed:
            return ALLOW
        return Deny(
            "region_not_allowed",
            (
                f"recipient {recipient.name!r} is in region {recipient.region!r}, "
                f"not allowed for {level.value} data"
                if recipient.region is not None
                else f"recipient {recipient.name!r} declares no region; {level.value} data "
                "must stay in an allowed region"
            ),
            {
                "classification": level.value,
                "recipient": recipient.name,
                "recipient_region": recipient.region,
                "message_region": region[:64] if region is not None else None,
                "allowed": list(listed),
            },
        )

    return residency
