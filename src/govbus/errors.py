"""The govbus error hierarchy: the bottom layer, imported by every other layer.

Every error carries a stable machine-readable ``code`` and a ``retryable`` flag, so callers
(the orchestrator, the retry wrapper, the CLI) decide by type and code, never by message text.
"""

from __future__ import annotations

from collections.abc import Sequence


class GovbusError(Exception):
    """Base class of every error govbus raises on purpose.

    Attributes:
        code: stable snake_case identifier, safe to match on and to put in audit records.
        retryable: True when the same operation may succeed if tried again (transient).
    """

    code: str = "govbus_error"
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class ConfigError(GovbusError):
    """A configuration value, file or reference is wrong; fix the input and try again."""

    code = "config_error"


class EnvelopeError(GovbusError):
    """An envelope failed to parse or validate. ``problems`` lists ``field: reason`` lines."""

    code = "envelope_invalid"

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = tuple(problems)
        detail = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + detail)


class SignatureError(EnvelopeError):
    """An envelope's signature is missing, malformed or does not verify."""

    code = "signature_invalid"


class RegistryError(GovbusError):
    """An agent card is invalid, a name is taken, or a reference (fallback) is dangling."""

    code = "registry_error"


class DuplicateAgentError(RegistryError):
    code = "duplicate_agent"


class InvalidAgentCardError(RegistryError):
    code = "invalid_agent_card"


class UnknownAgentError(RegistryError):
    code = "unknown_agent"


class NoRouteError(GovbusError):
    """A message names no recipient and no registered agent handles its type."""

    code = "no_route"


class BusError(GovbusError):
    """Base class of bus failures."""

    code = "bus_error"


class BusClosedError(BusError):
    """The bus is closed or draining and accepts no new publishes."""

    code = "bus_closed"


class NoSubscriberError(BusError):
    """Nothing on the bus would receive the message (no subscription, or no stream, matches
    its address and type): it was not published, rather than silently lost."""

    code = "no_subscriber"


class BusUnavailableError(BusError):
    """The broker cannot be reached right now; the publish may succeed later."""

    code = "bus_unavailable"
    retryable = True


class RequestTimeoutError(GovbusError):
    """No reply arrived before the request's timeout or deadline."""

    code = "request_timeout"
    retryable = True


class DeadlineExceededError(GovbusError):
    """The message's deadline passed before the work could finish."""

    code = "deadline_exceeded"


class AgentTimeoutError(GovbusError):
    """An agent's handler did not finish within its timeout (bounded by the deadline)."""

    code = "timeout"
    retryable = True


class AgentFailedError(GovbusError):
    """An agent's handler raised; the original exception is the ``__cause__``."""

    code = "exception"


class PolicyDeniedError(GovbusError):
    """Raised by request helpers when the policy denied the request."""

    code = "denied"


class AuditError(GovbusError):
    """The audit store cannot be opened, written or read."""

    code = "audit_error"


class AuditUnavailableError(AuditError):
    code = "audit_unavailable"
    retryable = True


class ChainBrokenError(AuditError):
    """The audit hash chain does not verify."""

    code = "chain_broken"


class BreakerOpenError(GovbusError):
    """A circuit breaker refused the call: the circuit is open, or half-open with its one probe
    already in flight. Not retryable: the caller should take the fallback at once rather than
    retry against a dependency that is known to be failing.

    Attributes:
        retry_after: seconds until the breaker admits a probe, when known (None otherwise).
    """

    code = "circuit_open"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhaustedError(GovbusError):
    """A spend would exceed a budget (calls, tokens or cost units) in its window. Not retryable:
    the budget recovers only as the window moves on, far beyond a retry's backoff.

    Attributes:
        key: whose budget ran out (usually an agent name).
    """

    code = "budget_exhausted"

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class BulkheadFullError(GovbusError):
    """A bulkhead has every slot busy and its queue full; the call was refused rather than left
    waiting. Retryable: slots free up as the calls in flight finish."""

    code = "bulkhead_full"
    retryable = True


class DeadLetterError(GovbusError):
    """The dead-letter store cannot be opened, written or read."""

    code = "dead_letter_error"


class DeadLetterNotFoundError(DeadLetterError):
    """No dead letter has the given id (or the id prefix is ambiguous)."""

    code = "dead_letter_not_found"


class DrillError(GovbusError):
    """A drill file is malformed, names something that does not exist, or cannot be run."""

    code = "drill_error"
