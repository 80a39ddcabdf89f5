"""``classification_ceiling``: deny messages classified above what their recipient may receive.

```yaml
- id: clearance
  use: classification_ceiling
  max: pii            # optional: a ceiling for every recipient; default: the recipient's clearance
```

The ceiling is the recipient agent card's ``clearance``. With ``max`` it is the lower of the two
(``max`` can tighten a recipient's clearance, never widen it: a card that says ``internal`` keeps
meaning ``internal``). A client address has no card, so only ``max`` applies to it; with neither
there is nothing to compare against and the check allows.
"""

from __future__ import annotations

from govbus.envelope import Classification
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny


class ClassificationCeilingParams(CheckParams):
    """Parameters of ``classification_ceiling``.

    Attributes:
        max: the highest classification any recipient may receive; None (default) leaves the
            recipient card's clearance as the only ceiling.
    """

    max: Classification | None = None


@CHECK_KINDS.register(
    "classification_ceiling",
    params=ClassificationCeilingParams,
    summary=(
        "Deny a message classified above its recipient's clearance (or above max, when given)."
    ),
)
def build(params: ClassificationCeilingParams, ctx: LoadContext) -> CheckFn:
    """Build the ``classification_ceiling`` check."""
    fixed = params.max

    def classification_ceiling(inp: CheckInput) -> Decision:
        level = inp.message.classification
        recipient = inp.recipient
        if recipient is None:
            if fixed is None or level <= fixed:
                return ALLOW
            ceiling, source = fixed, "max"
        else:
            clearance = recipient.clearance
            if fixed is not None and fixed < clearance:
                ceiling, source = fixed, "max"
            else:
                ceiling, source = clearance, "clearance"
            if level <= ceiling:
                return ALLOW
        return Deny(
            "above_clearance",
            f"message classified {level.value} is above the {source} ceiling {ceiling.value}",
            {"classification": level.value, "ceiling": ceiling.value, "source": source},
        )

    return classification_ceiling
