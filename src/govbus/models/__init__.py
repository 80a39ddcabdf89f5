"""Chat models: the protocol, typed errors and the deterministic scripted model (SPEC 9)."""

from govbus.models.errors import (
    ModelError,
    ModelRateLimitedError,
    ModelRejectedError,
    ModelTimeoutError,
    ModelUnavailableError,
)
from govbus.models.scripted import Fail, Reply, ScriptedModel, count_tokens
from govbus.models.types import ChatMessage, ChatModel, ChatRequest, ChatResponse, Usage
from govbus.models.wrappers import (
    BreakerModel,
    BudgetedModel,
    DeadlineModel,
    RetryingModel,
    govern,
)

__all__ = [
    "BreakerModel",
    "BudgetedModel",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "DeadlineModel",
    "Fail",
    "ModelError",
    "ModelRateLimitedError",
    "ModelRejectedError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "Reply",
    "RetryingModel",
    "ScriptedModel",
    "Usage",
    "count_tokens",
    "govern",
]
