"""``rbac``: which actor roles may send which message types.

```yaml
- id: advisors-only
  use: rbac
  rules:                      # first rule whose types (and senders, if given) match decides
    - types: ["portfolio.*"]
      roles: [advisor, admin] # the actor must hold at least one
    - types: ["admin.*"]
      senders: ["console"]
      roles: [admin]
  default: allow              # when no rule matches: allow | deny (default deny)
```

Every role a rule names must be declared in ``spec.roles`` when the policy declares roles, so a
typo in a role name is a load error, not a rule that silently never matches.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictStr

from govbus.envelope import TypePattern
from govbus.policy.engine import NameGlobs
from govbus.policy.errors import CheckBuildError, ParamIssue, did_you_mean
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext, TypeGlob, join_or
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

_NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class RbacRule(CheckParams):
    """One rule: messages of ``types`` (from ``senders``, if given) need one of ``roles``."""

    types: list[TypeGlob] = Field(min_length=1)
    roles: list[_NonEmpty] = Field(min_length=1)
    senders: list[_NonEmpty] | None = Field(default=None, min_length=1)


class RbacParams(CheckParams):
    """Parameters of ``rbac``.

    Attributes:
        rules: tried in order; the first whose ``types`` (and ``senders``) match decides.
        default: the decision when no rule matches.
    """

    rules: list[RbacRule] = Field(min_length=1)
    default: Literal["allow", "deny"] = "deny"


def _describe(params: RbacParams) -> list[str]:
    words = []
    for rule in params.rules:
        senders = f" from senders {join_or(rule.senders)}" if rule.senders else ""
        words.append(
            f"Rule: messages of types {join_or(rule.types)}{senders} need one of the "
            f"roles {join_or(rule.roles)}."
        )
    verb = "allowed" if params.default == "allow" else "denied"
    return [*words, f"Messages no rule covers are {verb}."]


@CHECK_KINDS.register(
    "rbac",
    params=RbacParams,
    describe=_describe,
    summary=(
        "Require the actor to hold one of a rule's roles for the message types it covers; "
        "the first matching rule decides."
    ),
)
def build(params: RbacParams, ctx: LoadContext) -> CheckFn:
    """Build the ``rbac`` check; refuses roles not declared in ``spec.roles``."""
    if ctx.roles:
        undeclared = [
            ParamIssue(
                ("rules", i, "roles", j),
                "undeclared_role",
                f"role {role!r} is not declared in spec.roles{did_you_mean(role, ctx.roles)}",
            )
            for i, rule in enumerate(params.rules)
            for j, role in enumerate(rule.roles)
            if role not in ctx.roles
        ]
        if undeclared:
            raise CheckBuildError(undeclared)

    rules = tuple(
        (
            TypePattern(rule.types),
            NameGlobs(rule.senders) if rule.senders is not None else None,
            frozenset(rule.roles),
            tuple(rule.roles),
            f"requires one of the roles: {', '.join(rule.roles)}",
        )
        for rule in params.rules
    )
    no_rule = (
        ALLOW
        if params.default == "allow"
        else Deny("no_rule", "no rbac rule covers this message type, and the default is deny")
    )

    def rbac(inp: CheckInput) -> Decision:
        message = inp.message
        for types, senders, roles, required, requires in rules:
            if not types.matches(message.type):
                continue
            if senders is not None and not senders.matches(message.sender):
                continue
            actor = message.actor
            if actor is None:
                return Deny(
                    "no_actor", f"message has no actor; {requires}", {"required": list(required)}
                )
            if roles.isdisjoint(actor.roles):
                return Deny(
                    "missing_role",
                    f"actor holds none of the required roles; {requires}",
                    {"required": list(required), "held": list(actor.roles)},
                )
            return ALLOW
        return no_rule

    return rbac
