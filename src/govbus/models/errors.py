"""Errors of model providers, typed so wrappers know which ones are worth a retry."""

from __future__ import annotations

from govbus.errors import GovbusError


class ModelError(GovbusError):
    """A model call failed (the base of the errors below)."""

    code = "model_error"


class ModelUnavailableError(ModelError):
    """The provider could not be reached or answered with a server error (5xx, reset)."""

    code = "model_unavailable"
    retryable = True


class ModelTimeoutError(ModelError):
    """The call did not finish within its deadline."""

    code = "model_timeout"
    retryable = True


class ModelRateLimitedError(ModelError):
    """The provider asked us to slow down (HTTP 429)."""

    code = "model_rate_limited"
    retryable = True


class ModelRejectedError(ModelError):
    """The provider refused the request itself (HTTP 4xx other than 429): retrying cannot help."""

    code = "model_rejected"
