"""The orchestrator layer: the governed dispatch path and the ``App`` facade."""

from govbus.orchestrator.alerts import alert_json, webhook
from govbus.orchestrator.app import App, load_app, make_audit, make_bus
from govbus.orchestrator.config import AppConfig, AuditConfig
from govbus.orchestrator.core import (
    DEGRADATION_KEYS,
    DENIED,
    FAILED,
    SYSTEM_SENDER,
    AgentStats,
    Alert,
    AlertHook,
    DeliveryContext,
    DispatchReport,
    Orchestrator,
    RecipientDecision,
    outcome,
)

__all__ = [
    "DEGRADATION_KEYS",
    "DENIED",
    "FAILED",
    "SYSTEM_SENDER",
    "AgentStats",
    "Alert",
    "AlertHook",
    "App",
    "AppConfig",
    "AuditConfig",
    "DeliveryContext",
    "DispatchReport",
    "Orchestrator",
    "RecipientDecision",
    "alert_json",
    "load_app",
    "make_audit",
    "make_bus",
    "outcome",
    "webhook",
]
