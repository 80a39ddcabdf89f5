"""``explainability``: outputs of high-risk agents must say why.

```yaml
- id: advice-is-explained
  use: explainability
  min_risk: high          # senders whose card risk is at least this (default: high)
  field: advice.rationale # payload field holding the rationale; dotted path (default: rationale)
  min_length: 20          # characters, surrounding whitespace not counted (default: 1)
```

Applies to messages sent by a registered agent whose card ``risk`` is at least ``min_risk``:
their payload must hold a string at ``field`` with at least ``min_length`` characters once
surrounding whitespace is stripped (a blank rationale explains nothing). A path segment made of
digits also indexes a list (``steps.0.why``). Messages from clients (no sender card) and from
lower-risk agents are allowed. The evidence says which field and what was wrong with it
(missing, not a string, too short, with its length), never its text.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import Field, StrictInt, StrictStr

from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny
from govbus.registry.card import Risk

_MISSING: Final = object()


class ExplainabilityParams(CheckParams):
    """Parameters of ``explainability``.

    Attributes:
        min_risk: the lowest sender risk the rule applies to.
        field: dotted path of the rationale in the payload.
        min_length: fewest characters (after stripping whitespace) the rationale must have.
    """

    min_risk: Risk = Risk.HIGH
    field: StrictStr = Field(default="rationale", pattern=r"^[^.\s]+(\.[^.\s]+)*$", max_length=200)
    min_length: StrictInt = Field(default=1, ge=1)


def _lookup(payload: Any, path: tuple[str, ...]) -> Any:
    value = payload
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


@CHECK_KINDS.register(
    "explainability",
    params=ExplainabilityParams,
    summary=(
        "Deny outputs of agents at or above a risk level (default high) that do not carry a "
        "non-empty rationale field."
    ),
)
def build(params: ExplainabilityParams, ctx: LoadContext) -> CheckFn:
    """Build the ``explainability`` check."""
    min_rank = params.min_risk.rank
    field = params.field
    path = tuple(field.split("."))
    min_length = params.min_length
    reason = f"outputs of {params.min_risk.value}-risk agents must carry a rationale in {field!r}"

    def explainability(inp: CheckInput) -> Decision:
        sender = inp.sender
        if sender is None or sender.risk.rank < min_rank:
            return ALLOW
        value = _lookup(inp.message.payload, path)
        if isinstance(value, str):
            length = len(value.strip())
            if length >= min_length:
                return ALLOW
            problem = "too_short"
        else:
            length = 0
            problem = "missing" if value is _MISSING or value is None else "not_a_string"
        return Deny(
            "missing_rationale",
            reason,
            {
                "field": field,
                "problem": problem,
                "length": length,
                "min_length": min_length,
                "sender_risk": sender.risk.value,
            },
        )

    return explainability
