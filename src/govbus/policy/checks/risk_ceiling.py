"""``risk_ceiling``: the riskier the recipient agent, the more the actor must be entitled to.

```yaml
- id: high-risk-needs-advisor
  use: risk_ceiling
  require_roles:              # recipient risk -> roles the actor must hold one of
    high: [advisor, admin]
    critical: [admin]
  max_risk: critical          # optional: deny any recipient whose risk is above this
```

A level's roles apply to recipients at that level **and above, up to the next listed level**:
with only ``high`` listed, a ``critical`` agent needs the ``high`` roles too, so forgetting to
list the top level never leaves it open. Recipients below every listed level, and client
addresses (no card, no risk), need no role. ``max_risk`` is checked first.

Every role must be declared in ``spec.roles`` when the policy declares roles, so a typo is a load
error, not a rule that silently never matches.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, StrictStr, model_validator

from govbus.policy.errors import CheckBuildError, ParamIssue, did_you_mean
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny
from govbus.registry.card import Risk

_Role = Annotated[StrictStr, Field(min_length=1)]


class RiskCeilingParams(CheckParams):
    """Parameters of ``risk_ceiling``; at least one of the two must be given.

    Attributes:
        require_roles: for a recipient risk level, the roles the actor must hold one of.
        max_risk: the highest recipient risk allowed at all.
    """

    require_roles: dict[Risk, Annotated[list[_Role], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    max_risk: Risk | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        if not self.require_roles and self.max_risk is None:
            raise ValueError("give require_roles, max_risk or both; otherwise nothing is checked")
        return self


# One precomputed rule per risk level: (role set, roles in policy order, requirement text).
_Rule = tuple[frozenset[str], tuple[str, ...], str]


@CHECK_KINDS.register(
    "risk_ceiling",
    params=RiskCeilingParams,
    summary=(
        "Require the actor to hold listed roles to reach agents of a risk level, and deny "
        "recipients above max_risk."
    ),
)
def build(params: RiskCeilingParams, ctx: LoadContext) -> CheckFn:
    """Build the ``risk_ceiling`` check; refuses roles not declared in ``spec.roles``."""
    if ctx.roles:
        undeclared = [
            ParamIssue(
                ("require_roles", level.value, j),
                "undeclared_role",
                f"role {role!r} is not declared in spec.roles{did_you_mean(role, ctx.roles)}",
            )
            for level, roles in params.require_roles.items()
            for j, role in enumerate(roles)
            if role not in ctx.roles
        ]
        if undeclared:
            raise CheckBuildError(undeclared)

    # Resolve "this level and above, up to the next listed level" once, for every level.
    rules: dict[Risk, _Rule | None] = {}
    current: _Rule | None = None
    for level in Risk:
        roles = params.require_roles.get(level)
        if roles is not None:
            required = tuple(dict.fromkeys(roles))
            current = (
                frozenset(required),
                required,
                f"agents of risk {level.value} and above require one of the roles: "
                f"{', '.join(required)}",
            )
        rules[level] = current
    max_risk = params.max_risk

    def risk_ceiling(inp: CheckInput) -> Decision:
        recipient = inp.recipient
        if recipient is None:
            return ALLOW
        risk = recipient.risk
        if max_risk is not None and risk > max_risk:
            return Deny(
                "risk_above_ceiling",
                f"recipient {recipient.name!r} is {risk.value} risk, above the ceiling "
                f"{max_risk.value}",
                {"recipient": recipient.name, "risk": risk.value, "max_risk": max_risk.value},
            )
        rule = rules[risk]
        if rule is None:
            return ALLOW
        roles, required, requires = rule
        actor = inp.message.actor
        if actor is None:
            return Deny(
                "no_actor",
                f"message has no actor; {requires}",
                {"recipient": recipient.name, "risk": risk.value, "required": list(required)},
            )
        if roles.isdisjoint(actor.roles):
            return Deny(
                "missing_role",
                f"actor holds none of the required roles; {requires}",
                {
                    "recipient": recipient.name,
                    "risk": risk.value,
                    "required": list(required),
                    "held": list(actor.roles),
                },
            )
        return ALLOW

    return risk_ceiling
