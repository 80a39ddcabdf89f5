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

__all__ = [
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "Fail",
    "ModelError",
    "ModelRateLimitedError",
    "ModelRejectedError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "Reply",
    "ScriptedModel",
    "Usage",
    "count_tokens",
]
