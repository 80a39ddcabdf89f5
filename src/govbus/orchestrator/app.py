"""``App``: the everyday entry point: agents, policy, bus and audit in one object.

Example:
    >>> import asyncio, govbus
    >>> app = govbus.App(audit="memory://")
    >>> @app.agent("echo", handles="echo.*")
    ... async def echo(msg, ctx):
    ...     return ctx.reply("echo.reply", {"said": msg.payload["text"]})
    >>> async def main():
    ...     async with app:
    ...         reply = await app.request(govbus.Message(
    ...             type="echo.say", sender="web", payload={"text": "hi"}))
    ...         return reply.payload
    >>> asyncio.run(main())
    {'said': 'hi'}
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from govbus.audit import (
    AuditEvent,
    AuditStore,
    Durability,
    MemoryAuditStore,
    SpoolingAuditStore,
    SqlAuditStore,
)
from govbus.bus import Bus, DeadLetter, DeadLetterStore, InMemoryBus, open_dead_letters
from govbus.envelope import (
    REPLY_TO,
    TRACEPARENT,
    HmacSigner,
    Message,
    new_id,
)
from govbus.errors import BusClosedError, ConfigError, DeadLetterNotFoundError, EnvelopeError
from govbus.models import ChatModel, ChatRequest, ChatResponse, govern
from govbus.orchestrator.alerts import webhook
from govbus.orchestrator.config import DEFAULT_AUDIT_URL, AppConfig
from govbus.orchestrator.core import (
    DEGRADATION_KEYS,
    PAYLOAD_STORAGE,
    AlertHook,
    Clock,
    DispatchReport,
    Orchestrator,
    PayloadStorage,
    outcome,
    utc_now,
)
from govbus.policy import CHECK_KINDS, CheckKindRegistry, Policy, load_policy, parse_policy
from govbus.policy.approvals import Approval, require_approval
from govbus.registry import Agent, AgentRegistry, FunctionAgent, Handler, agent
from govbus.resilience import Budget, CircuitBreaker, IdempotencyStore, RetryPolicy
from govbus.telemetry import Tracing, new_traceparent
from govbus.telemetry.tracing import OUTCOME

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

log = logging.getLogger("govbus.app")

#: Metadata key on a replayed dead letter: the id of the message it replays.
REPLAY_OF = "replay_of"

_UNRESTRICTED = """\
apiVersion: govbus/v1
kind: Policy
metadata:
  name: unrestricted
  version: "0"
  description: No checks. Every decision is still audited. Load a reviewed policy instead.
spec:
  mode: enforce
  checks: []
"""


def default_approvals_path() -> Path:
    """The approvals file shipped with govbus (it approves ``policies/default.yaml``)."""
    return Path(__file__).resolve().parents[1] / "governance" / "approvals.yaml"


def make_bus(url: str, *, dead_letters: DeadLetterStore | None = None) -> Bus:
    """A bus from a URL: ``memory://`` (default, one process) or ``nats://HOST:PORT``
    (NATS JetStream, the ``nats`` extra)."""
    if url in ("memory://", "memory", ""):
        return InMemoryBus(dead_letters=dead_letters)
    scheme = url.split("://", 1)[0]
    if scheme == "nats":
        try:
            from govbus.bus.nats import NatsBus
        except ImportError as exc:
            raise ConfigError(
                f"bus {url!r} needs the nats extra: pip install 'govbus[nats]' ({exc})"
            ) from None
        return NatsBus(url, dead_letters=dead_letters)
    raise ConfigError(f"unknown bus URL {url!r}: expected memory:// or nats://HOST:PORT")


def default_dlq_url(audit: str) -> str:
    """Where dead letters go by default: beside the audit log. A SQLite audit file gets a
    ``dlq.db`` in the same folder (a second file, so the audit writer never waits for it); a
    server database keeps them in the same database; an in-memory audit, in memory.

    >>> default_dlq_url("sqlite:///.govbus/audit.db")
    'sqlite:///.govbus/dlq.db'
    """
    if audit in ("memory://", "memory"):
        return "memory://"
    if "://" not in audit:
        audit = f"sqlite:///{audit}"
    if audit.startswith("sqlite:"):
        head, _, name = audit.rpartition("/")
        return f"{head}/dlq.db" if name else audit
    return audit


def make_audit(
    url: str,
    *,
    writer: Literal["process", "thread"] = "process",
    spool: str | Path | None = None,
) -> AuditStore:
    """An audit store from a URL: ``memory://`` or any SQLAlchemy URL or SQLite file path.

    ``writer="process"`` (the default) seals and inserts records in a child process, so the
    audit log costs the event loop's core almost nothing; ``"thread"`` keeps it in-process.
    ``spool`` is a local file for records while the database is down (replayed in order).
    """
    if url in ("memory://", "memory"):
        store: AuditStore = MemoryAuditStore()
        return SpoolingAuditStore(store, spool) if spool is not None else store
    return SqlAuditStore(url, writer=writer, spool=spool)


def load_app(ref: str, **kwargs: Any) -> App:
    """Build the app an app factory ``MODULE:FACTORY`` makes, passing ``kwargs``: the contract
    of ``govbus worker``, ``govbus dlq replay`` and drills (``bus=`` and ``audit=``, and
    ``policy=`` when given).

    Raises:
        ConfigError: the module cannot be imported, has no such callable, the callable does
            not take these keyword arguments, or it does not return an :class:`App`.
    """
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"app {ref!r}: cannot import module {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError(f"app {ref!r}: module {module_name!r} has no callable {attr!r}")
    try:
        app = factory(**kwargs)
    except TypeError as exc:
        wanted = ", ".join(f"{k}=" for k in kwargs)
        raise ConfigError(f"app {ref!r}: the factory must accept {wanted} ({exc})") from None
    if not isinstance(app, App):
        raise ConfigError(f"app {ref!r}: the factory returned {type(app).__name__}, not App")
    return app


class App:
    """A governed multi-agent application.

    Args:
        name: the application's name (inventory, audit).
        policy: a loaded :class:`Policy`, or a path to a policy YAML file. None loads an
            unrestricted policy (every decision is still audited) and logs a warning.
        bus: a :class:`Bus` or a bus URL (default ``memory://``).
        audit: an :class:`AuditStore` or an audit URL (default SQLite at
            ``.govbus/audit.db``; ``memory://`` keeps it in memory).
        durability: ``batch`` (the writer commits in the background) or ``sync`` (each
            dispatch waits until its audit record is committed; group commit).
        signer: with an :class:`HmacSigner`, client messages must be signed and every
            dispatched copy is signed and verified at delivery.
        clock: the UTC clock (tests inject a fake one).
        alert: called on every fallback, failure and circuit opening: a callable taking an
            :class:`Alert`, or an http(s) URL that receives each alert as JSON
            (:func:`govbus.orchestrator.alerts.webhook`).
        default_timeout: seconds a request waits when no timeout is given.
        audit_writer: for an audit URL, seal and insert records in a child ``process``
            (default: the event loop's core stays free) or in a ``thread``.
        strict: refuse to start unless the policy's sha256 has an approval record.
        budgets: agent name -> :class:`~govbus.resilience.Budget` of deliveries per window.
        on_budget_exhausted: when an agent's budget is spent: ``fallback`` (its fallback
            answers, cause ``budget_exhausted``), ``deny`` (the sender gets ``govbus.failed``)
            or ``alert`` (deliver anyway; alert and audit only).
        approvals: the approvals file (default: ``governance/approvals.yaml`` in the working
            directory, else the one shipped with govbus, which approves the default policy).
        breaker_threshold: consecutive failures that open an agent's circuit breaker.
        breaker_recovery: seconds an open breaker waits before admitting one probe.
        dead_letter: keep messages an agent gave up on in the bus's dead-letter store.
        dlq: the dead-letter store, or its URL, for a bus built here from a URL (default: see
            :func:`default_dlq_url`). ``govbus dlq`` lists, shows and replays its entries.
        accept_policies: sha256s of policies, besides this app's own, under which a message
            dispatched by another process is still handled here (a rolling upgrade); a message
            decided under any other policy is refused, audited and answered ``govbus.failed``
            (``policy_mismatch``).
        audit_spool: a local file that takes audit records, in order, while the audit store
            cannot write them, replayed when it is back: the SQL store's own spool of sealed
            records for an audit URL, :class:`~govbus.audit.SpoolingAuditStore` around a store
            object.
        tracer_provider: an OpenTelemetry ``TracerProvider`` (the SDK's, configured by you):
            every dispatch, policy evaluation, delivery, handler and fallback becomes a span,
            and a request is one trace across processes (see :mod:`govbus.telemetry.tracing`).
            None (the default) makes no spans and costs nothing.
        meter_provider: an OpenTelemetry ``MeterProvider``: counters of dispatches, denials
            per check, fallbacks per cause, dead letters, handler durations per agent, breaker
            states and the audit queue (see :mod:`govbus.telemetry.metrics`).
        audit_payload: what decision records keep of each message: ``hash`` (default: the
            envelope's header and the payload's sha256), ``none``, ``redacted`` (also the
            payload, personal data replaced by ``[REDACTED:<entity>]`` using the policy's pii
            detector) or ``full`` (also the payload in clear: opt in only where the audit
            store is protected like the data itself). ``govbus policy replay`` can re-check
            payload-reading checks only on ``redacted`` or ``full`` records.
        shadow_policy: a candidate policy (or its file) evaluated beside the enforced one on
            live traffic; each decision it would make differently is audited (kind
            ``shadow``) and never enforced. ``govbus policy shadow-report`` sums them up.

    The ``alert`` hook and the resilience settings (``budgets``, ``on_budget_exhausted``,
    ``breaker_threshold``, ``breaker_recovery``, ``dead_letter``, ``idempotency``) are public
    attributes of the same names; changing them takes effect if done before the app starts.
    """

    def __init__(
        self,
        name: str = "govbus",
        *,
        policy: Policy | str | Path | None = None,
        bus: Bus | str | None = None,
        audit: AuditStore | str | None = None,
        durability: Durability = "batch",
        signer: HmacSigner | None = None,
        clock: Clock = utc_now,
        alert: AlertHook | str | None = None,
        default_timeout: float = 30.0,
        node: str | None = None,
        check_kinds: CheckKindRegistry | None = None,
        audit_writer: Literal["process", "thread"] = "process",
        strict: bool = False,
        approvals: str | Path | None = None,
        budgets: Mapping[str, Budget] | None = None,
        on_budget_exhausted: Literal["fallback", "deny", "alert"] = "fallback",
        breaker_threshold: int = 5,
        breaker_recovery: float = 30.0,
        dead_letter: bool = True,
        dlq: DeadLetterStore | str | None = None,
        audit_spool: str | Path | None = None,
        accept_policies: Sequence[str] = (),
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        audit_payload: PayloadStorage = "hash",
        shadow_policy: Policy | str | Path | None = None,
    ) -> None:
        self.name = name
        self.node = node or f"{name}-{os.getpid()}-{new_id()[-8:]}"
        self.check_kinds = check_kinds or CHECK_KINDS
        self.registry = AgentRegistry()
        self._policy_source = policy
        if isinstance(bus, str | type(None)):
            distributed = (bus or "").startswith("nats:")
            if dlq is None and not distributed:  # NATS keeps dead letters in a stream
                dlq = default_dlq_url(audit if isinstance(audit, str) else "memory://")
            store = open_dead_letters(dlq) if isinstance(dlq, str) else dlq
            self._bus: Bus = make_bus(bus or "memory://", dead_letters=store)
        elif dlq is not None:
            raise ConfigError(
                "dlq= applies to a bus built from a URL; give your bus its dead-letter store "
                "(e.g. InMemoryBus(dead_letters=...))"
            )
        else:
            self._bus = bus
        if isinstance(audit, str | type(None)):
            # A SQL store spools sealed records itself (in order, after its writer's retries).
            self._audit = make_audit(audit or DEFAULT_AUDIT_URL, writer=audit_writer,
                                     spool=audit_spool)  # fmt: skip
        elif audit_spool is not None and isinstance(audit, SqlAuditStore):
            raise ConfigError(
                "audit_spool= applies to an audit URL; give your SqlAuditStore its spool "
                "(SqlAuditStore(url, spool=...))"
            )
        elif audit_spool is not None:
            self._audit = SpoolingAuditStore(audit, audit_spool)
        else:
            self._audit = audit
        self._durability: Durability = durability
        self._signer = signer
        self._clock = clock
        self.alert: AlertHook | None = webhook(alert, app=name) if isinstance(alert, str) else alert
        self._default_timeout = default_timeout
        self.budgets: dict[str, Budget] = dict(budgets or {})
        self.on_budget_exhausted: Literal["fallback", "deny", "alert"] = on_budget_exhausted
        self.breaker_threshold = breaker_threshold
        self.breaker_recovery = breaker_recovery
        self.dead_letter = dead_letter
        self.accept_policies = tuple(accept_policies)
        #: Where delivered message ids are remembered (None: in memory for ten minutes, or a
        #: JetStream key-value bucket on a NATS bus).
        self.idempotency: IdempotencyStore | None = None
        #: Retry transient model errors as each model's retry policy says (False: one attempt).
        self.model_retries = True
        self._providers: dict[str, ChatModel] = {}
        self._models: dict[str, ChatModel] = {}
        self._protections: dict[str, Callable[[ChatModel], ChatModel]] = {}
        self._orchestrator: Orchestrator | None = None
        self._strict = strict
        self._approvals = Path(approvals) if approvals is not None else None
        self.approval: Approval | None = None
        self._tracing = Tracing(tracer_provider) if tracer_provider is not None else None
        self._meter_provider = meter_provider
        if audit_payload not in PAYLOAD_STORAGE:
            raise ConfigError(
                f"audit_payload must be one of {', '.join(PAYLOAD_STORAGE)}, got {audit_payload!r}"
            )
        self._audit_payload: PayloadStorage = audit_payload
        self._shadow_source = shadow_policy

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> App:
        """Build an app from a ``govbus.yaml`` file (see :mod:`govbus.orchestrator.config`)."""
        config = AppConfig.load(path)
        kwargs: dict[str, Any] = {
            "policy": config.policy,
            "bus": config.bus,
            "audit": config.audit.url,
            "durability": config.audit.durability,
            "audit_writer": config.audit.writer,
            "audit_spool": config.audit.spool,
            "strict": config.require_approved_policy,
            "approvals": config.approvals,
            "default_timeout": config.default_timeout,
            "node": config.node,
            "dlq": config.dlq,
            "audit_payload": config.audit.payload,
            "shadow_policy": config.shadow_policy,
        }
        kwargs.update(overrides)
        return cls(config.name, **kwargs)

    def agent(self, name: str, **card: Any) -> Callable[[Handler], FunctionAgent]:
        """Decorator: register an async function as an agent (see :class:`AgentCard`)."""

        def wrap(handler: Handler) -> FunctionAgent:
            created = agent(name, **card)(handler)
            self.registry.register(created)
            return created

        return wrap

    def register(self, item: Agent | type[Agent]) -> Agent:
        """Register an agent instance, or an :class:`Agent` subclass (instantiated here)."""
        instance = item() if isinstance(item, type) else item
        return self.registry.register(instance)

    # -- models and the fault-injection seams --------------------------------------------------

    def use_model(
        self,
        provider: ChatModel,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        budget: Budget | None = None,
    ) -> ChatModel:
        """Register a model provider under its ``name`` with the protections given (see
        :func:`govbus.models.govern`) and return the model agents should call.

        The returned model looks the provider up on every call, so :meth:`wrap_model` (the
        drill runner's fault injection) reaches agents that already hold it.

        Raises:
            ConfigError: a model of that name is already registered.
        """
        name = provider.name
        if name in self._providers:
            raise ConfigError(f"a model named {name!r} is already registered with this app")

        def protect(model: ChatModel) -> ChatModel:
            return govern(
                model,
                timeout=timeout,
                retry=retry if self.model_retries else None,
                breaker=breaker,
                budget=budget,
                budget_key=name,
            )

        self._providers[name] = provider
        self._protections[name] = protect
        self._models[name] = protect(provider)
        return _ModelSlot(self._models, name)

    def model(self, name: str) -> ChatModel:
        """The protected model registered as ``name`` (see :meth:`use_model`).

        Raises:
            ConfigError: no model of that name is registered.
        """
        if name not in self._models:
            known = ", ".join(sorted(self._models)) or "none"
            raise ConfigError(f"no model named {name!r} is registered (registered: {known})")
        return _ModelSlot(self._models, name)

    @property
    def models(self) -> dict[str, ChatModel]:
        """Registered model providers by name (unprotected, as given to :meth:`use_model`)."""
        return dict(self._providers)

    def wrap_model(self, name: str, wrapper: Callable[[ChatModel], ChatModel]) -> None:
        """Put ``wrapper(provider)`` in place of the provider registered as ``name``, under the
        same protections (a provider fault is then retried, broken and timed out like a real
        one). A seam for fault injection; see :mod:`govbus.drills.faults`.
        """
        self.model(name)
        provider = self._providers[name] = wrapper(self._providers[name])
        self._models[name] = self._protections[name](provider)

    def wrap_agent(self, name: str, wrapper: Callable[[Agent], Agent]) -> None:
        """Put ``wrapper(agent)`` in place of agent ``name`` (same card name) before the app
        starts. A seam for fault injection; see :mod:`govbus.drills.faults`.

        Raises:
            UnknownAgentError: no such agent.
            ConfigError: the app has started (its agents are attached already).
        """
        if self._orchestrator is not None and self._orchestrator.state != "new":
            raise ConfigError(f"cannot wrap agent {name!r}: app {self.name!r} has started")
        wrapped = wrapper(self.registry.get(name))
        if wrapped.card.name != name:
            raise ConfigError(f"a wrapper of agent {name!r} must keep its name")
        self.registry.replace(wrapped)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def orchestrator(self) -> Orchestrator:
        if self._orchestrator is None:
            self._orchestrator = Orchestrator(
                registry=self.registry,
                policy=self._load_policy(),
                bus=self._bus,
                audit=self._audit,
                inbox=f"_inbox.{self.node}",
                clock=self._clock,
                signer=self._signer,
                durability=self._durability,
                alert=self.alert,
                default_timeout=self._default_timeout,
                budgets=self.budgets,
                on_budget_exhausted=self.on_budget_exhausted,
                breaker_threshold=self.breaker_threshold,
                breaker_recovery=self.breaker_recovery,
                # "is None", not "or": an empty store is falsy (it has a __len__).
                idempotency=self.idempotency
                if self.idempotency is not None
                else _shared_idempotency(self._bus),
                dead_letter=self.dead_letter,
                accept_policies=self.accept_policies,
                tracing=self._tracing,
                meter_provider=self._meter_provider,
                payload_storage=self._audit_payload,
                shadow=self._load_shadow(),
            )
        return self._orchestrator

    @property
    def policy(self) -> Policy:
        return self.orchestrator.policy

    # -- the kill switch ---------------------------------------------------------------------

    def pause(
        self,
        agent: str,
        *,
        by: str,
        reason: str = "",
        mode: Literal["fallback", "hold"] = "fallback",
    ) -> None:
        """Pause ``agent``: its messages go to its fallback (``mode="fallback"``) or wait until
        it is resumed (``mode="hold"``). Audited with ``by`` and ``reason``.

        Raises:
            UnknownAgentError: no agent of that name is registered.
        """
        self.registry.get(agent)
        self.orchestrator.killswitch.pause(agent, mode=mode, by=by, reason=reason)

    def resume(self, agent: str, *, by: str, reason: str = "") -> None:
        """Resume a paused agent (held messages are then delivered). Audited."""
        self.registry.get(agent)
        self.orchestrator.killswitch.resume(agent, by=by, reason=reason)

    async def replay(
        self,
        letter: DeadLetter | str,
        *,
        timeout: float | None = None,
        by: str,
        store: DeadLetterStore | None = None,
    ) -> Message:
        """Send a dead letter through governance again and wait for the answer.

        The message goes to the agent that gave up on it, as a new message (a new id, so
        duplicate detection does not drop it; ``metadata.replay_of`` names the original) with a
        fresh deadline. The policy is evaluated again, as for any message. The entry leaves
        the store once the replay is answered (whatever the answer); if the agent fails again,
        the new message becomes a new dead letter. Audited as ``admin dlq_replay`` with ``by``.

        Args:
            letter: the entry, or its id (or a unique prefix of it) in ``store``.
            store: where the entry is (default: this app's bus's dead-letter store).

        Raises:
            DeadLetterNotFoundError: no such entry.
        """
        store = store or self._bus.dead_letter_store
        if isinstance(letter, str):
            letter = await store.get(letter)
        original = letter.message
        target = letter.address if letter.address in self.registry else original.to
        metadata = {
            k: v for k, v in original.metadata.items() if k not in (REPLY_TO, *DEGRADATION_KEYS)
        }
        metadata[REPLAY_OF] = original.id
        message = original.model_copy(
            update={
                "id": new_id(),
                "to": target,
                "attempt": 1,
                "deadline": None,
                "created_at": self._clock(),
                "metadata": metadata,
                "signature": None,
            }
        )
        if self._signer is not None:
            message = self._signer.sign(message)
        if self.orchestrator.state == "new":
            await self.start()
        self._audit.submit(
            AuditEvent(
                kind="admin",
                ts=self._clock(),
                outcome="dlq_replay",
                message_id=message.id,
                policy_sha256=self.policy.sha256,
                data={"entry": letter.id, "replay_of": original.id, "agent": target, "by": by},
            )
        )
        reply = await self.request(message, timeout=timeout)
        # Removed only once answered: a replay cut short leaves the entry for another try.
        with contextlib.suppress(DeadLetterNotFoundError):
            await store.remove(letter.id)
        return reply

    @property
    def bus(self) -> Bus:
        return self._bus

    @property
    def audit(self) -> AuditStore:
        return self._audit

    def _load_policy(self) -> Policy:
        source = self._policy_source
        if isinstance(source, Policy):
            return source
        if source is None:
            log.warning("no policy configured: running unrestricted (decisions are still audited)")
            return parse_policy(_UNRESTRICTED, source="<unrestricted>", kinds=self.check_kinds)
        return load_policy(source, kinds=self.check_kinds)

    def use_telemetry(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Set the OpenTelemetry providers of an app built elsewhere (a factory), before it
        starts: what ``govbus run --trace`` and ``govbus worker --trace`` do.

        Raises:
            ConfigError: the app has already started (its orchestrator exists).
        """
        if self._orchestrator is not None:
            raise ConfigError("set telemetry before the app starts (its orchestrator exists)")
        if tracer_provider is not None:
            self._tracing = Tracing(tracer_provider)
        if meter_provider is not None:
            self._meter_provider = meter_provider

    def _load_shadow(self) -> Policy | None:
        source = self._shadow_source
        if source is None or isinstance(source, Policy):
            return source
        return load_policy(source, kinds=self.check_kinds)

    @property
    def approvals_path(self) -> Path:
        """Where this app looks for approval records."""
        if self._approvals is not None:
            return self._approvals
        local = Path("governance/approvals.yaml")
        return local if local.exists() else default_approvals_path()

    async def start(self, agents: Sequence[str] | None = None) -> App:
        """Load the policy (in strict mode: check its approval), open the audit store and bus,
        and attach agents (default: all).

        Raises:
            UnapprovedPolicyError: strict mode and no approval record for the policy's sha256.
        """
        if self._strict and self.orchestrator.state == "new":
            self.approval = require_approval(self.policy, self.approvals_path)
        if self.orchestrator.state == "new":
            for name, provider in self._providers.items():  # settings changed since use_model
                self._models[name] = self._protections[name](provider)
        await self.orchestrator.start(agents)
        return self

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Drain in-flight work and flush the audit writer. Nothing is lost."""
        if self._orchestrator is not None:
            await self._orchestrator.close(drain_timeout=drain_timeout)

    async def __aenter__(self) -> App:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending ---------------------------------------------------------------------------------

    async def publish(self, message: Message | bytes | str | dict[str, Any]) -> DispatchReport:
        """Govern and dispatch a client message. Replies arrive at this app's inbox."""
        return await self.orchestrator.dispatch(await self._ingress(message))

    async def request(
        self, message: Message | bytes | str | dict[str, Any], *, timeout: float | None = None
    ) -> Message:
        """Dispatch and wait for the reply, or a ``govbus.denied`` / ``govbus.failed`` answer."""
        return await self._request(await self._ingress(message), timeout)

    async def gather(
        self,
        messages: Sequence[Message | bytes | str | dict[str, Any]],
        *,
        timeout: float | None = None,
    ) -> list[Message]:
        """Scatter-gather: request every message in parallel, replies in the same order."""
        ready = [await self._ingress(m) for m in messages]
        return list(await asyncio.gather(*(self._request(m, timeout) for m in ready)))

    async def _request(self, message: Message, timeout: float | None) -> Message:
        if self._tracing is None:
            return await self.orchestrator.request(message, timeout=timeout)
        with self._tracing.request(message) as span:
            reply = await self.orchestrator.request(message, timeout=timeout)
            span.set_attribute(OUTCOME, outcome(reply))
            return reply

    async def _ingress(self, raw: Message | bytes | str | dict[str, Any]) -> Message:
        """Step 1: parse, validate and verify; a bad envelope is audited, then raised."""
        orch = self.orchestrator
        if orch.state == "new":
            await self.start()
        elif orch.state != "running":
            raise BusClosedError(f"app {self.name!r} is {orch.state}; it accepts no new messages")
        try:
            if isinstance(raw, Message):
                message = raw
            elif isinstance(raw, dict):
                message = Message.from_dict(raw)
            else:
                message = Message.from_json(raw)
            if self._signer is not None:
                self._signer.verify(message)
        except EnvelopeError as exc:
            self._audit.submit(
                AuditEvent(
                    kind="rejected",
                    ts=self._clock(),
                    outcome=exc.code,
                    data={"error": str(exc)},
                    policy_sha256=orch.policy.sha256,
                )
            )
            orch.counters["rejected"] += 1
            raise
        extra: dict[str, str] = {}
        if TRACEPARENT not in message.metadata and self._tracing is None:
            # (With tracing, the dispatch span's own context becomes the traceparent.)
            extra[TRACEPARENT] = new_traceparent()
        if message.metadata.get(REPLY_TO) != orch.inbox:
            extra[REPLY_TO] = orch.inbox
        if extra:
            message = message.model_copy(update={"metadata": {**message.metadata, **extra}})
            if self._signer is not None:
                message = self._signer.sign(message)
        return message


def _shared_idempotency(bus: Bus) -> IdempotencyStore | None:
    """On NATS, delivered message ids are remembered in a JetStream key-value bucket, so a
    redelivery to any process is recognised; in one process, memory is enough (None)."""
    if type(bus).__name__ != "NatsBus":
        return None
    from govbus.bus.nats import NatsBus, NatsIdempotencyStore

    assert isinstance(bus, NatsBus)
    return NatsIdempotencyStore(bus)


class _ModelSlot:
    """The model an agent holds: resolves the app's current protected model on every call."""

    __slots__ = ("_models", "name")

    def __init__(self, models: dict[str, ChatModel], name: str) -> None:
        self._models = models
        self.name = name

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await self._models[self.name].complete(request)

    def __repr__(self) -> str:
        return f"<model {self.name}>"
