"""govbus: a governed message bus for multi-agent AI systems.

Agents exchange typed, classified :class:`Message` envelopes over a swappable bus; before every
dispatch a policy loaded from a reviewed YAML file decides; failing agents are replaced by
deterministic fallbacks; every decision lands in a hash-chained audit log.
"""

from govbus.envelope import Actor, Classification, HmacSigner, Message, new_id
from govbus.errors import GovbusError
from govbus.orchestrator import DENIED, FAILED, Alert, App, AppConfig, DispatchReport, Orchestrator
from govbus.policy import Policy, load_policy
from govbus.registry import Agent, AgentCard, AgentRegistry, Context, Risk, agent

__version__ = "0.1.0"

__all__ = [
    "DENIED",
    "FAILED",
    "Actor",
    "Agent",
    "AgentCard",
    "AgentRegistry",
    "Alert",
    "App",
    "AppConfig",
    "Classification",
    "Context",
    "DispatchReport",
    "GovbusError",
    "HmacSigner",
    "Message",
    "Orchestrator",
    "Policy",
    "Risk",
    "__version__",
    "agent",
    "load_policy",
    "new_id",
]
