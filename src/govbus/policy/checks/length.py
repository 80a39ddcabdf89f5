"""``length``: deny messages larger than a limit.

```yaml
- id: size
  use: length
  max_bytes: 65536
  measure: content      # content (default) | envelope
```

``content`` measures the payload and the metadata as compact JSON: the parts of a message that
can grow (every other envelope field has a hard bound in the envelope schema). It reuses the
payload serialization the audit log needs anyway. ``envelope`` measures the exact wire form,
at the cost of serializing the whole envelope on every hop.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt

from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny


class LengthParams(CheckParams):
    """Parameters of ``length``.

    Attributes:
        max_bytes: the largest allowed size in bytes.
        measure: ``content`` (payload and metadata as compact JSON) or ``envelope`` (the
            whole wire form).
    """

    max_bytes: StrictInt = Field(gt=0)
    measure: Literal["content", "envelope"] = "content"


def _describe(params: LengthParams) -> list[str]:
    what = "content" if params.measure == "content" else "whole envelope"
    return [f"Limit: at most {params.max_bytes:,} bytes of the message's {what}."]


@CHECK_KINDS.register(
    "length",
    params=LengthParams,
    describe=_describe,
    summary="Deny any message whose content (or whole envelope) is larger than max_bytes.",
)
def build(params: LengthParams, ctx: LoadContext) -> CheckFn:
    """Build the ``length`` check."""
    limit = params.max_bytes
    what = "content" if params.measure == "content" else "envelope"
    reason = f"message {what} is larger than {limit} bytes"

    def content_length(inp: CheckInput) -> Decision:
        size = inp.scan.content_size
        if size <= limit:
            return ALLOW
        return Deny("too_large", reason, {"size": size, "limit": limit, "measure": what})

    def envelope_length(inp: CheckInput) -> Decision:
        size = inp.scan.wire_size
        if size <= limit:
            return ALLOW
        return Deny("too_large", reason, {"size": size, "limit": limit, "measure": what})

    return content_length if params.measure == "content" else envelope_length
