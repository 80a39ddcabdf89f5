"""The policy layer: check input and decision types, the check-kind registry, the YAML loader
with its JSON Schema, and the composite evaluator.

Importing this package registers the built-in check kinds into :data:`CHECK_KINDS`.

Example:
    >>> from govbus.policy import parse_policy
    >>> policy = parse_policy('''
    ... apiVersion: govbus/v1
    ... kind: Policy
    ... metadata: {name: tiny, version: "1"}
    ... spec:
    ...   checks:
    ...     - {id: size, use: length, max_bytes: 65536}
    ... ''')
    >>> policy.checks[0].kind
    'length'
"""

# Importing the checks package registers the built-in kinds into CHECK_KINDS.
from govbus.policy import checks as checks
from govbus.policy.engine import CompiledCheck, Policy, When
from govbus.policy.errors import (
    CheckBuildError,
    CheckKindError,
    DuplicateCheckKindError,
    ParamIssue,
    PolicyError,
    PolicyIssue,
    PolicyNotFoundError,
)
from govbus.policy.kinds import CHECK_KINDS, CheckKind, CheckKindRegistry, CheckParams, LoadContext
from govbus.policy.loader import (
    NodePositions,
    load_policy,
    node_positions,
    parse_policy,
    policy_schema,
)
from govbus.policy.review import (
    Change,
    Finding,
    diff,
    explain,
    explain_html,
    lint,
)
from govbus.policy.types import (
    ALLOW,
    Allow,
    CheckFn,
    CheckInput,
    CheckOutcome,
    CheckResult,
    Decision,
    Deny,
    Escalate,
    Evaluation,
    MessageScan,
    Redact,
    Redaction,
)

__all__ = [
    "ALLOW",
    "CHECK_KINDS",
    "Allow",
    "Change",
    "CheckBuildError",
    "CheckFn",
    "CheckInput",
    "CheckKind",
    "CheckKindError",
    "CheckKindRegistry",
    "CheckOutcome",
    "CheckParams",
    "CheckResult",
    "CompiledCheck",
    "Decision",
    "Deny",
    "DuplicateCheckKindError",
    "Escalate",
    "Evaluation",
    "Finding",
    "LoadContext",
    "MessageScan",
    "NodePositions",
    "ParamIssue",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PolicyNotFoundError",
    "Redact",
    "Redaction",
    "When",
    "diff",
    "explain",
    "explain_html",
    "lint",
    "load_policy",
    "node_positions",
    "parse_policy",
    "policy_schema",
]
