"""``govbus.yaml``: the application configuration file.

Example::

    name: retail-advisory
    policy: policies/default.yaml      # relative to this file
    bus: memory://                     # or nats://127.0.0.1:4222 (with the nats extra)
    audit:
      url: sqlite:///.govbus/audit.db  # any SQLAlchemy URL; a bare path means SQLite
      durability: batch                # batch | sync
      writer: process                  # process (default) | thread
      spool: .govbus/audit.spool       # optional: records wait here while the store is down
      payload: hash                    # none | hash (default) | redacted | full
    dlq: sqlite:///.govbus/dlq.db      # dead letters (default: beside the audit log)
    default_timeout: 30
    require_approved_policy: true      # strict mode: refuse an unapproved policy
    shadow_policy: policies/candidate.yaml  # evaluated beside the policy, differences audited
    approvals: governance/approvals.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govbus.audit import Durability
from govbus.errors import ConfigError
from govbus.policy.errors import yaml_error

DEFAULT_AUDIT_URL = "sqlite:///.govbus/audit.db"


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = DEFAULT_AUDIT_URL
    durability: Durability = "batch"
    writer: Literal["process", "thread"] = "process"
    spool: str | None = None
    payload: Literal["none", "hash", "redacted", "full"] = "hash"


class AppConfig(BaseModel):
    """The validated contents of ``govbus.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="govbus", min_length=1)
    policy: str | None = None
    bus: str = "memory://"
    audit: AuditConfig = AuditConfig()
    node: str | None = None
    dlq: str | None = None
    default_timeout: float = Field(default=30.0, gt=0)
    require_approved_policy: bool = False
    approvals: str | None = None
    shadow_policy: str | None = None

    @classmethod
    def load(cls, path: str | Path) -> AppConfig:
        """Read and validate a config file; relative paths inside it resolve against it."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{file}: app config file not found") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read app config: {exc.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise yaml_error(file, exc) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{file}: app config must be a mapping of settings")
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigError(f"{file}: invalid app config: {problems}") from None
        for key in ("policy", "approvals", "shadow_policy"):
            value = getattr(config, key)
            if value is not None and not Path(value).is_absolute():
                config = config.model_copy(update={key: str(file.parent / value)})
        return config
