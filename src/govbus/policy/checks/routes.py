"""``routes``: who may send which message types to whom.

```yaml
- id: routes
  use: routes
  rules:
    - from: [web, mobile]             # the message's sender (its from field), name globs
      to: [portfolio_advisor]         # the recipient agent's name, name globs
      types: ["portfolio.*"]          # the message type, type globs
    - from: ["portfolio_*"]
      to: ["*client*"]                # replies to a client (no recipient agent)
      types: ["*"]
  default: deny                       # senders no rule mentions: allow | deny (default deny)
```

Semantics, in order:

1. The first rule whose ``from``, ``to`` and ``types`` all match allows the message.
2. If some rule names the sender in ``from`` but none matches as a whole, the message is denied
   (``route_not_allowed``): a sender with rules may use only the routes listed for it.
3. If no rule's ``from`` matches the sender, ``default`` decides (a deny has code
   ``no_route_rule``).

The recipient name is the recipient agent's card name. When there is no recipient agent (a
reply to a client), it is the message's ``to`` field, or the pseudo-name ``*client*`` when
``to`` is empty. ``to`` entries are globs, so ``"*client*"`` also matches agent names that
contain ``client``; ``"*"`` matches every recipient.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, StrictStr

from govbus.envelope import TypePattern
from govbus.policy.engine import NameGlobs
from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext, TypeGlob, join_or
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny

#: The recipient name used when a message goes to a client rather than an agent.
CLIENT: Final = "*client*"

#: Per-sender rule lists are memoized; the bound keeps a flood of senders from growing it.
_MAX_CACHED_SENDERS: Final = 10_000

_NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class RouteRule(CheckParams):
    """One allowed route: senders ``from`` may send ``types`` to recipients ``to``."""

    senders: list[_NonEmpty] = Field(alias="from", min_length=1)
    to: list[_NonEmpty] = Field(min_length=1)
    types: list[TypeGlob] = Field(min_length=1)


class RoutesParams(CheckParams):
    """Parameters of ``routes``.

    Attributes:
        rules: the allowed routes, tried in order.
        default: the decision for senders that no rule's ``from`` matches.
    """

    rules: list[RouteRule] = Field(min_length=1)
    default: Literal["allow", "deny"] = "deny"


_Route = tuple[int, NameGlobs, TypePattern]


def _describe(params: RoutesParams) -> list[str]:
    words = [
        f"Route: {join_or(rule.senders)} may send {join_or(rule.types)} to {join_or(rule.to)}."
        for rule in params.rules
    ]
    verb = "allowed" if params.default == "allow" else "denied"
    return [*words, f"Messages no rule covers are {verb}."]


@CHECK_KINDS.register(
    "routes",
    params=RoutesParams,
    describe=_describe,
    summary=(
        "Allow only the listed routes (which senders may send which message types to which "
        "recipients); senders no rule mentions get the default."
    ),
)
def build(params: RoutesParams, ctx: LoadContext) -> CheckFn:
    """Build the ``routes`` check; globs compile here, once."""
    rules = tuple(
        (NameGlobs(rule.senders), NameGlobs(rule.to), TypePattern(rule.types))
        for rule in params.rules
    )
    by_sender: dict[str, tuple[_Route, ...]] = {}
    no_rule = (
        ALLOW
        if params.default == "allow"
        else Deny("no_route_rule", "no route rule mentions this sender, and the default is deny")
    )

    def routes_for(sender: str) -> tuple[_Route, ...]:
        found = by_sender.get(sender)
        if found is None:
            found = tuple(
                (i, to, types)
                for i, (senders, to, types) in enumerate(rules)
                if senders.matches(sender)
            )
            if len(by_sender) < _MAX_CACHED_SENDERS:
                by_sender[sender] = found
        return found

    def routes(inp: CheckInput) -> Decision:
        message = inp.message
        candidates = routes_for(message.sender)
        if not candidates:
            return no_rule
        recipient = inp.recipient
        name = recipient.name if recipient is not None else (message.to or CLIENT)
        message_type = message.type
        for _, to, types in candidates:
            if to.matches(name) and types.matches(message_type):
                return ALLOW
        return Deny(
            "route_not_allowed",
            f"no route lets {message.sender!r} send {message_type!r} to {name!r}",
            {
                "sender": message.sender,
                "recipient": name,
                "type": message_type,
                "rules": [i for i, _, _ in candidates],
            },
        )

    return routes
