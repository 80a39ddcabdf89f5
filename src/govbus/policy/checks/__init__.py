"""Built-in check kinds, one small module each.

Importing this package registers every built-in kind into :data:`govbus.policy.CHECK_KINDS`
(``import govbus.policy`` does it for you).
"""

from govbus.policy.checks import (
    declassify,
    length,
    pii,
    prompt_injection,
    rbac,
    required_metadata,
)

__all__ = [
    "declassify",
    "length",
    "pii",
    "prompt_injection",
    "rbac",
    "required_metadata",
]
