"""Built-in check kinds, one small module each.

Importing this package registers every built-in kind into :data:`govbus.policy.CHECK_KINDS`
(``import govbus.policy`` does it for you).
"""

from govbus.policy.checks import (
    classification_ceiling,
    consent,
    declassify,
    explainability,
    json_schema,
    length,
    pii,
    prompt_injection,
    rate_limit,
    rbac,
    required_metadata,
    residency,
    risk_ceiling,
    routes,
    tenant_isolation,
)

__all__ = [
    "classification_ceiling",
    "consent",
    "declassify",
    "explainability",
    "json_schema",
    "length",
    "pii",
    "prompt_injection",
    "rate_limit",
    "rbac",
    "required_metadata",
    "residency",
    "risk_ceiling",
    "routes",
    "tenant_isolation",
]
