"""Built-in check kinds, one small module each.

Importing this package registers every built-in kind into :data:`govbus.policy.CHECK_KINDS`
(``import govbus.policy`` does it for you).
"""

from govbus.policy.checks import length, rbac, required_metadata
from govbus.policy.checks import pii as pii
from govbus.policy.checks import prompt_injection as prompt_injection

__all__ = ["length", "rbac", "required_metadata"]
