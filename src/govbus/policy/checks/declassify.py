"""``declassify``: the only way a classification may fall along a causal chain.

```yaml
- id: public-summaries
  use: declassify
  rules:
    - senders: [summarizer]          # the agent producing the lower-classified output
      types: ["report.public_summary"]
      from: pii                      # highest cause classification this rule lowers from
      to: public                     # lowest classification the output may carry
      require_roles: [compliance]    # optional: the actor must hold one of these roles
```

An agent's output carries at least its cause's classification. Without a rule, the orchestrator
raises a lowered output back before any check sees it. With this kind in the policy, the
orchestrator first asks its enforcing ``declassify`` checks: an output is kept at its lower
level only if a rule matches its sender, its type, the cause's level (at most ``from``) and its
own level (at least ``to``). In the composite the check then sees either a permitted lowering
(allow) or none at all; it denies (``declassify_not_permitted``) only a lowering the
orchestrator did not vet, so a policy evaluated directly (tests, replay) is still strict.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from govbus.envelope import Classification, TypePattern, glob_match
from govbus.policy.errors import CheckBuildError, ParamIssue
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny


class DeclassifyRule(BaseModel):
    """One permitted lowering."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    senders: list[str] = Field(min_length=1)
    types: list[str] = Field(min_length=1)
    from_: Classification = Field(alias="from")
    to: Classification
    require_roles: list[str] = Field(default_factory=list)


class DeclassifyParams(CheckParams):
    """Parameters of ``declassify``.

    Attributes:
        rules: the permitted lowerings; the first matching rule permits.
    """

    rules: list[DeclassifyRule] = Field(min_length=1)


@CHECK_KINDS.register(
    "declassify",
    params=DeclassifyParams,
    summary="Permit an agent's output to carry a lower classification than its cause, by rule.",
)
def build(params: DeclassifyParams, ctx: LoadContext) -> CheckFn:
    """Build the ``declassify`` check."""
    issues = [
        ParamIssue(("rules", i, "to"), "invalid_value", "'to' must be lower than 'from'")
        for i, rule in enumerate(params.rules)
        if not rule.to < rule.from_
    ]
    issues += [
        ParamIssue(
            ("rules", i, "require_roles", j),
            "undeclared_role",
            f"role {role!r} is not declared in spec.roles",
        )
        for i, rule in enumerate(params.rules)
        for j, role in enumerate(rule.require_roles)
        if ctx.roles and role not in ctx.roles
    ]
    if issues:
        raise CheckBuildError(issues)
    compiled = [
        (rule.senders, TypePattern(rule.types), rule.from_, rule.to, frozenset(rule.require_roles))
        for rule in params.rules
    ]

    def declassify(inp: CheckInput) -> Decision:
        cause = inp.cause
        message = inp.message
        if cause is None or message.classification >= cause.classification:
            return ALLOW  # nothing is being lowered
        for senders, types, highest, lowest, roles in compiled:
            if (
                cause.classification <= highest
                and message.classification >= lowest
                and types.matches(message.type)
                and any(glob_match(s, message.sender) for s in senders)
                and (not roles or (message.actor is not None and message.actor.has_any_role(roles)))
            ):
                return ALLOW
        return Deny(
            "declassify_not_permitted",
            f"no rule lets {message.sender!r} lower {message.type!r} from "
            f"{cause.classification.value} to {message.classification.value}",
            {"from": cause.classification.value, "to": message.classification.value},
        )

    return declassify
