"""The envelope layer: ``Message``, ``Classification``, ``Actor``, canonical form, signing.

Knows nothing of buses, policies or agents.
"""

from govbus.envelope.ids import new_id
from govbus.envelope.model import (
    DEGRADED,
    FALLBACK_CAUSE,
    FALLBACK_OF,
    MESSAGE_TYPE_PATTERN,
    POLICY_SHA256,
    REPLY_TO,
    SPEC_VERSION,
    TRACEPARENT,
    TRACESTATE,
    Actor,
    Classification,
    Message,
)
from govbus.envelope.ranked import RankedStrEnum
from govbus.envelope.routing import TypePattern, glob_match, validate_glob
from govbus.envelope.signing import HmacSigner

__all__ = [
    "DEGRADED",
    "FALLBACK_CAUSE",
    "FALLBACK_OF",
    "MESSAGE_TYPE_PATTERN",
    "POLICY_SHA256",
    "REPLY_TO",
    "SPEC_VERSION",
    "TRACEPARENT",
    "TRACESTATE",
    "Actor",
    "Classification",
    "HmacSigner",
    "Message",
    "RankedStrEnum",
    "TypePattern",
    "glob_match",
    "new_id",
    "validate_glob",
]
