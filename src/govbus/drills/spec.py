"""The drill file format (``drills/*.yaml``), validated by pydantic; its JSON Schema ships as
``govbus/drills/drill.schema.json`` (``govbus drill schema`` prints it).

A drill names an app, the faults to inject, the messages to send and what must be true
afterwards, plus the one mechanism it proves (the can-fail tests switch that mechanism off and
expect the drill to fail)::

    apiVersion: govbus/v1
    kind: Drill
    metadata:
      name: advisor-timeout
      description: The advisor hangs; the snapshot answers, marked degraded.
    spec:
      proves: fallback
      app: govbus.examples.finance:create_app
      faults:
        - kind: agent_timeout
          agent: portfolio_advisor
      messages:
        - type: advisory.request
          from: advisor-portal
          actor: {subject: asha.rao, roles: [advisor], tenant: retail-eu}
          payload: {account: A-100}
          repeat: 3
      expect:
        fallback_fired: timeout
        reply: {metadata: {degraded: "true"}}
        audit_contains:
          - {kind: fallback, outcome: timeout, count: 3}
        within_ms: 3000
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from govbus.errors import DrillError
from govbus.policy import node_positions
from govbus.policy.errors import yaml_error

FaultKind = Literal[
    "agent_timeout",
    "agent_exception",
    "agent_slow",
    "llm_error",
    "llm_timeout",
    "budget_exhausted",
    "circuit_open",
    "bus_restart",
    "audit_down",
    "poison_message",
    "duplicate_delivery",
]
#: Fault kinds that act on one agent (``agent`` is required).
AGENT_FAULTS: frozenset[str] = frozenset(
    {
        "agent_timeout",
        "agent_exception",
        "agent_slow",
        "budget_exhausted",
        "circuit_open",
        "poison_message",
    }
)

#: What a drill can prove; the runner can switch each off (``govbus drill run --disable``).
Mechanism = Literal[
    "fallback",
    "deadline",
    "breaker",
    "budget",
    "retry",
    "dlq",
    "idempotency",
    "spool",
    "bulkhead",
    "publish_retry",
]
MECHANISMS: tuple[str, ...] = Mechanism.__args__  # type: ignore[attr-defined]

Outcome = Literal["ok", "degraded", "denied", "failed"]

#: Where a drill's app runs: the in-process bus, or NATS JetStream on a private server.
BusKind = Literal["memory", "nats"]

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Fault(BaseModel):
    """One fault to inject.

    Which calls it hits: it leaves the first ``after`` eligible calls alone, then hits at most
    ``first`` calls (all, when unset), each with probability ``rate`` (seeded by ``seed``, so
    a drill is repeatable). For ``bus_restart`` the eligible calls are the requests the drill
    sends, and ``first`` is 1 unless given: one restart.
    """

    model_config = _STRICT

    kind: FaultKind
    agent: str | None = Field(default=None, description="the agent the fault hits")
    model: str | None = Field(
        default=None, description="llm_* faults: the model name (default: the app's only one)"
    )
    after: int = Field(default=0, ge=0, description="eligible calls left alone first")
    first: int | None = Field(
        default=None, ge=1, description="most calls hit (default: all; bus_restart: 1)"
    )
    rate: float = Field(default=1.0, gt=0, le=1, description="probability of hitting a call")
    seed: int = Field(default=0, description="seed of the rate's random choices")
    delay_ms: float | None = Field(
        default=None,
        gt=0,
        description="agent_slow: added latency; llm_timeout: how long the model hangs "
        "(default: until cancelled)",
    )
    error: Literal["unavailable", "rate_limited", "rejected"] = Field(
        default="unavailable", description="llm_error: which provider error"
    )
    retryable: bool = Field(
        default=False,
        description="agent_exception / poison_message: raise a retryable error, so the bus "
        "redelivers up to the agent's max_attempts",
    )
    match: dict[str, Any] | None = Field(
        default=None,
        description="poison_message: payload fields that identify the poison message",
    )
    types: list[str] | None = Field(
        default=None, description="duplicate_delivery: message type globs to deliver twice"
    )
    limit: int = Field(
        default=0, ge=0, description="budget_exhausted: deliveries allowed in the window"
    )
    window_s: float = Field(default=3600.0, gt=0, description="budget_exhausted: window")
    on_exhausted: Literal["fallback", "deny", "alert"] = Field(
        default="fallback", description="budget_exhausted: what the app does when spent"
    )
    down_ms: float = Field(
        default=1000.0,
        ge=0,
        le=60_000,
        description="bus_restart: how long the server stays down between its stop and its start",
    )
    stop: Literal["graceful", "kill"] = Field(
        default="graceful",
        description="bus_restart: how the server is stopped, by its process id: graceful "
        "(SIGTERM: it closes its connections and writes its state) or kill (SIGKILL, as in a "
        "crash: deliveries whose acks it had not written yet come again)",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_restart(cls, data: Any) -> Any:
        # A restart hit on every request after `after` would keep the broker down: one unless
        # the drill asks for more (each waits until the previous one is over).
        if isinstance(data, dict) and data.get("kind") == "bus_restart" and "first" not in data:
            return {**data, "first": 1}
        return data

    @model_validator(mode="after")
    def _needs(self) -> Fault:
        if self.kind in AGENT_FAULTS and self.agent is None:
            raise ValueError(f"a {self.kind} fault needs 'agent' (the agent it hits)")
        if self.kind == "agent_slow" and self.delay_ms is None:
            raise ValueError("an agent_slow fault needs 'delay_ms' (the latency it adds)")
        if self.kind == "poison_message" and not self.match:
            raise ValueError("a poison_message fault needs 'match' (payload fields of the poison)")
        return self


class AgentSettings(BaseModel):
    """Card settings a drill overrides for one agent."""

    model_config = _STRICT

    timeout: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    concurrency: int | None = Field(default=None, ge=1)


class Settings(BaseModel):
    """App settings for the drill."""

    model_config = _STRICT

    breaker_threshold: int | None = Field(default=None, ge=1)
    breaker_recovery_s: float | None = Field(default=None, ge=0)
    agents: dict[str, AgentSettings] = Field(default_factory=dict)


class DrillMessage(BaseModel):
    """A message to send (as a request: the drill waits for its reply), ``repeat`` times."""

    model_config = _STRICT

    type: str
    sender: str = Field(default="drill", alias="from")
    to: str | None = None
    classification: str | None = None
    actor: dict[str, Any] | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    repeat: int = Field(default=1, ge=1, le=100_000)
    vary_subject: bool = Field(
        default=False,
        description="each repeat from its own actor subject (subject-1, subject-2, ...), as when "
        "many people use the service, so per-actor rate limits apply per person",
    )
    within_ms: float | None = Field(
        default=None, gt=0, description="every reply to this message within this many ms"
    )


class Bound(BaseModel):
    """A count that must lie within ``[min, max]``."""

    model_config = _STRICT

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class AuditExpectation(BaseModel):
    """Audit records that must exist: exactly ``count`` of them, or at least ``min`` (1)."""

    model_config = _STRICT

    kind: str
    outcome: str | None = None
    recipient: str | None = None
    agent: str | None = Field(default=None, description="admin records: data.agent")
    count: int | None = Field(default=None, ge=0)
    min: int = Field(default=1, ge=0)


class ReplyExpectation(BaseModel):
    """What every reply must look like (fields given must match)."""

    model_config = _STRICT

    type: str | None = None
    metadata: dict[str, str | None] = Field(
        default_factory=dict, description="a null value means the key must be absent"
    )
    payload: dict[str, Any] = Field(default_factory=dict)


class Expectations(BaseModel):
    """What must be true once every message has its answer."""

    model_config = _STRICT

    outcomes: dict[Outcome, int | Bound] | None = Field(
        default=None, description="replies per outcome: an exact count or {min, max}"
    )
    fallback_fired: bool | str | None = Field(
        default=None,
        description="true/false, or the cause every fallback must have (e.g. timeout)",
    )
    reply: ReplyExpectation | None = None
    audit_contains: list[AuditExpectation] = Field(default_factory=list)
    audit_verified: bool | None = Field(default=None, description="the hash chain verifies")
    dlq_count: int | None = Field(default=None, ge=0, description="dead letters at the end")
    delivered_exactly: dict[str, int] | None = Field(
        default=None, description="times each agent's handler ran"
    )
    within_ms: float | None = Field(default=None, gt=0, description="every reply within")
    alerts: list[str] | None = Field(
        default=None, description="alert kinds that must have fired (fallback, dead_letter, ...)"
    )
    no_loss: bool | None = Field(
        default=None,
        description="every message got exactly one answer and has its audit decision",
    )


class DrillSpec(BaseModel):
    model_config = _STRICT

    proves: Mechanism = Field(description="the mechanism this drill proves")
    bus: BusKind = Field(
        default="memory",
        description="memory: the in-process bus; nats: NatsBus on a private nats-server "
        "(JetStream, a free port, its own store directory) that the runner starts for the "
        "drill and stops after it",
    )
    app: str = Field(
        default="govbus.examples.finance:create_app",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="MODULE:FACTORY; the factory takes keyword arguments bus and audit",
    )
    settings: Settings = Settings()
    faults: list[Fault] = Field(min_length=1)
    messages: list[DrillMessage] = Field(min_length=1)
    concurrency: int = Field(default=1, ge=1, le=10_000, description="requests in flight")
    timeout_s: float = Field(default=10.0, gt=0, description="how long each request waits")
    expect: Expectations

    @model_validator(mode="after")
    def _broker(self) -> DrillSpec:
        if self.bus != "nats" and any(f.kind == "bus_restart" for f in self.faults):
            raise ValueError(
                "a bus_restart fault needs 'bus: nats' (a broker to restart); the in-memory bus "
                "has none"
            )
        return self


class DrillMetadata(BaseModel):
    model_config = _STRICT

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = ""


class Drill(BaseModel):
    """A parsed drill file."""

    model_config = _STRICT

    api_version: Literal["govbus/v1"] = Field(alias="apiVersion")
    kind: Literal["Drill"]
    metadata: DrillMetadata
    spec: DrillSpec
    source: str = Field(default="<string>", exclude=True)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def fault_kinds(self) -> list[str]:
        return [f.kind for f in self.spec.faults]


def drill_schema() -> dict[str, Any]:
    """The drill file JSON Schema, as shipped (``drill.schema.json``)."""
    return _shipped_schema()


def generated_schema() -> dict[str, Any]:
    """The JSON Schema generated from the models (a test keeps the shipped copy equal)."""
    schema = Drill.model_json_schema(by_alias=True)
    schema["properties"].pop("source", None)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://govbus.dev/schemas/drill.schema.json"
    schema["title"] = "govbus drill file"
    return schema


@cache
def _shipped_schema() -> dict[str, Any]:
    path = Path(__file__).with_name("drill.schema.json")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def parse_drill(text: str, *, source: str = "<string>") -> Drill:
    """Parse and validate a drill from YAML ``text``.

    Raises:
        DrillError: invalid YAML, or a field that fails validation; each problem is reported
            as ``source:line: field.path: message``.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DrillError(str(yaml_error(source, exc))) from None
    if not isinstance(data, dict):
        raise DrillError(
            f"{source}:1: a drill file is a mapping (apiVersion, kind, metadata, spec)"
        )
    try:
        return Drill.model_validate({**data, "source": source})
    except ValidationError as exc:
        positions = node_positions(text)
        lines = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            # Literal/union errors carry the failing branch in the path; keep the field part.
            path = tuple(p for p in loc if not (isinstance(p, str) and p[:1].isupper()))
            line = positions.at(path, key=error["type"] == "extra_forbidden")[0]
            name = ".".join(str(part) for part in path) or "<file>"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{source}:{line}: {name}: {message}")
        raise DrillError("\n".join(dict.fromkeys(lines))) from None


def load_drill(path: str | Path) -> Drill:
    """Read and validate one drill file.

    Raises:
        DrillError: the file cannot be read or is not a valid drill.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DrillError(f"{file}: drill file not found") from None
    except OSError as exc:
        raise DrillError(f"{file}: cannot read drill file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DrillError(f"{file}: drill file is not UTF-8: {exc.reason}") from None
    return parse_drill(text, source=str(file))


def find_drills(paths: list[str | Path]) -> list[Path]:
    """Drill files named, or found (``*.yaml``, ``*.yml``, sorted) in directories named.

    Raises:
        DrillError: a path does not exist, or a directory holds no drill files.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            if not files:
                raise DrillError(f"{path}: no drill files (*.yaml) in this directory")
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            raise DrillError(f"{path}: no such drill file or directory")
    return found
