"""``tenant_isolation``: no message crosses from one tenant to another.

```yaml
- id: tenants
  use: tenant_isolation
  require_tenant: false   # true: deny messages whose actor carries no tenant (missing_tenant)
```

Two rules, both on the message's actor tenant:

- **Along a causal chain the tenant never changes.** When the message was caused by another
  (an agent's output) and the cause's actor has a tenant, this message's actor must carry the
  same tenant; dropping it counts as a change (``tenant_changed``).
- **Agents serve only their tenants.** A recipient whose card has one or more ``tenant:<id>``
  tags accepts only messages whose actor tenant is one of those ids (``tenant_not_allowed``);
  an agent without tenant tags serves every tenant.

```python
AgentCard(name="acme-advisor", handles="portfolio.*", tags=["tenant:acme", "tenant:acme-eu"])
```

Tenant ids are organisational identifiers, so the evidence names them (an auditor needs to
see which tenants a denied hop would have joined); subjects never appear.
"""

from __future__ import annotations

from typing import Final

from pydantic import StrictBool

from govbus.policy.kinds import CHECK_KINDS, CheckParams, LoadContext
from govbus.policy.types import ALLOW, CheckFn, CheckInput, Decision, Deny
from govbus.registry.card import AgentCard

#: Card tags with this prefix name a tenant the agent serves.
TENANT_TAG: Final = "tenant:"

#: Cached tag sets per check; cards are few and fixed, the bound is for safety only.
_MAX_CACHED_CARDS: Final = 10_000


class TenantIsolationParams(CheckParams):
    """Parameters of ``tenant_isolation``.

    Attributes:
        require_tenant: deny messages whose actor (or missing actor) carries no tenant.
    """

    require_tenant: StrictBool = False


@CHECK_KINDS.register(
    "tenant_isolation",
    params=TenantIsolationParams,
    summary=(
        "Keep each tenant's traffic apart: a message keeps its cause's tenant, and agents tagged "
        "tenant:<id> receive only those tenants' messages."
    ),
)
def build(params: TenantIsolationParams, ctx: LoadContext) -> CheckFn:
    """Build the ``tenant_isolation`` check."""
    require = params.require_tenant
    missing = Deny("missing_tenant", "message has no actor tenant, and one is required")
    # Allowed tenants per card tag tuple: parsed once per distinct card, not on every hop.
    by_tags: dict[tuple[str, ...], frozenset[str]] = {}

    def tenant_isolation(inp: CheckInput) -> Decision:
        actor = inp.message.actor
        tenant = actor.tenant if actor is not None else None
        if tenant is None and require:
            return missing
        cause = inp.cause
        cause_tenant = cause.actor.tenant if cause is not None and cause.actor else None
        if cause is not None and cause_tenant is not None and tenant != cause_tenant:
            return Deny(
                "tenant_changed",
                "message carries a different tenant than the message that caused it",
                {"tenant": tenant, "cause_tenant": cause_tenant, "cause_id": cause.id},
            )
        recipient = inp.recipient
        if recipient is not None and recipient.tags:
            allowed = _allowed_tenants(recipient, by_tags)
            if allowed and tenant not in allowed:
                return Deny(
                    "tenant_not_allowed",
                    f"agent {recipient.name!r} does not serve this message's tenant",
                    {"tenant": tenant, "allowed": sorted(allowed), "recipient": recipient.name},
                )
        return ALLOW

    return tenant_isolation


def _allowed_tenants(
    card: AgentCard, by_tags: dict[tuple[str, ...], frozenset[str]]
) -> frozenset[str]:
    tags = card.tags
    allowed = by_tags.get(tags)
    if allowed is None:
        allowed = frozenset(
            tag[len(TENANT_TAG) :]
            for tag in tags
            if tag.startswith(TENANT_TAG) and len(tag) > len(TENANT_TAG)
        )
        if len(by_tags) < _MAX_CACHED_CARDS:
            by_tags[tags] = allowed
    return allowed
