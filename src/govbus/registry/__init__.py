"""The registry layer: agent cards, agents (decorator and class forms), the agent registry.

The check-kind registry lives in the policy layer (``govbus.policy.kinds``): its entries are
policy types, and a lower layer must not import a higher one.
"""

from govbus.registry.agent import (
    Agent,
    Context,
    FunctionAgent,
    Handler,
    HandlerResult,
    agent,
    build_card,
)
from govbus.registry.card import AgentCard, ModelRef, Risk
from govbus.registry.registry import AgentRegistry

__all__ = [
    "Agent",
    "AgentCard",
    "AgentRegistry",
    "Context",
    "FunctionAgent",
    "Handler",
    "HandlerResult",
    "ModelRef",
    "Risk",
    "agent",
    "build_card",
]
