"""Policy approvals: which policy text (by sha256) who approved, when, under which reference.

``governance/approvals.yaml``::

    approvals:
      - name: retail-banking
        version: 2026.11.0
        sha256: 3dfc8064...            # govbus policy hash policies/default.yaml
        approver: Chief Risk Officer
        date: 2026-11-21
        reference: RISK-COMMITTEE-2026-11

In strict mode an app refuses to start with a policy whose sha256 has no record, so what runs is
exactly what was approved: reformatting the file keeps its hash, any semantic change needs a new
approval.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govbus.errors import ConfigError
from govbus.policy.engine import Policy
from govbus.policy.errors import yaml_error


class Approval(BaseModel):
    """One approval record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    approver: str = Field(min_length=1)
    date: dt.date
    reference: str = Field(min_length=1)


class UnapprovedPolicyError(ConfigError):
    """Strict mode: the policy's sha256 has no approval record."""

    code = "policy_not_approved"


def load_approvals(path: str | Path) -> list[Approval]:
    """Read an approvals file; every problem names the file (and the record's position)."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: approvals file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read approvals: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise yaml_error(file, exc) from None
    if not isinstance(data, dict) or not isinstance(data.get("approvals"), list):
        raise ConfigError(f"{file}: an approvals file is a mapping with an 'approvals' list")
    records = []
    for index, raw in enumerate(data["approvals"]):
        try:
            records.append(Approval.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigError(f"{file}: approval {index}: {problems}") from None
    return records


def find_approval(policy: Policy, approvals: Iterable[Approval]) -> Approval | None:
    """The record approving exactly this policy text (by sha256), if any."""
    return next((a for a in approvals if a.sha256 == policy.sha256), None)


def require_approval(policy: Policy, approvals_path: str | Path) -> Approval:
    """Strict mode: return the policy's approval or raise :class:`UnapprovedPolicyError`."""
    approval = find_approval(policy, load_approvals(approvals_path))
    if approval is None:
        raise UnapprovedPolicyError(
            f"policy {policy.name!r} {policy.version} (sha256 {policy.sha256}) has no approval "
            f"record in {approvals_path}; approve it there (govbus policy hash prints the hash) "
            "or run without strict mode"
        )
    return approval
