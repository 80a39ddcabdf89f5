"""``length``: deny messages whose wire form is larger than a limit.

```yaml
- id: size
  use: length
  max_bytes: 65536
```
"""

from __future__ import annotations

from pydantic import Field, StrictInt

from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny


class LengthParams(CheckParams):
    """Parameters of ``length``.

    Attributes:
        max_bytes: the largest allowed envelope, in bytes of its wire (JSON) form.
    """

    max_bytes: StrictInt = Field(gt=0)


@CHECK_KINDS.register(
    "length",
    params=LengthParams,
    summary="Deny any message whose wire form is larger than max_bytes bytes.",
)
def build(params: LengthParams, ctx: LoadContext) -> CheckFn:
    """Build the ``length`` check."""
    limit = params.max_bytes
    reason = f"message is larger than {limit} bytes"

    def length(inp: CheckInput) -> Decision:
        size = inp.scan.wire_size
        if size <= limit:
            return ALLOW
        return Deny("too_large", reason, {"size": size, "limit": limit})

    return length
