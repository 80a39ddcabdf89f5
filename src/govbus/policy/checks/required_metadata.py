"""``required_metadata``: deny messages that lack required metadata entries.

```yaml
- id: trace-required
  use: required_metadata
  keys: [traceparent]
  non_empty: true     # default: a present but blank value counts as missing
```
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictStr

from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny


class RequiredMetadataParams(CheckParams):
    """Parameters of ``required_metadata``.

    Attributes:
        keys: metadata keys every message must carry.
        non_empty: when true, a value that is empty or only whitespace counts as missing.
    """

    keys: list[Annotated[StrictStr, Field(min_length=1)]] = Field(min_length=1)
    non_empty: StrictBool = True


def _describe(params: RequiredMetadataParams) -> list[str]:
    blank = " (a blank value counts as missing)" if params.non_empty else ""
    return [f"Required metadata keys: {', '.join(params.keys)}{blank}."]


@CHECK_KINDS.register(
    "required_metadata",
    params=RequiredMetadataParams,
    describe=_describe,
    summary="Deny any message that lacks one of the listed metadata keys (or has it blank).",
)
def build(params: RequiredMetadataParams, ctx: LoadContext) -> CheckFn:
    """Build the ``required_metadata`` check."""
    keys = tuple(dict.fromkeys(params.keys))  # duplicates would only repeat the evidence
    non_empty = params.non_empty

    def required_metadata(inp: CheckInput) -> Decision:
        metadata = inp.message.metadata
        for key in keys:
            value = metadata.get(key)
            if value is None or (non_empty and (not value or value.isspace())):
                break
        else:
            return ALLOW
        missing = [
            k
            for k in keys
            if (v := metadata.get(k)) is None or (non_empty and (not v or v.isspace()))
        ]
        return Deny(
            "missing_metadata",
            f"message lacks required metadata: {', '.join(missing)}",
            {"missing": missing},
        )

    return required_metadata
