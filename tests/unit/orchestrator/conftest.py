"""Fixtures for orchestrator tests: an app on the in-memory bus with an in-memory audit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from govbus.audit import AuditRecord, MemoryAuditStore
from govbus.orchestrator import App
from govbus.policy import Policy, parse_policy

POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: test-policy, version: "1"}
spec:
  mode: enforce
  roles: [advisor, customer]
  checks:
    - id: size
      use: length
      max_bytes: 4096
    - id: advisors-only
      use: rbac
      rules:
        - types: ["portfolio.advise"]
          roles: [advisor]
      default: allow
"""


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, source="test-policy.yaml")


@pytest.fixture
def audit() -> MemoryAuditStore:
    return MemoryAuditStore()


@pytest.fixture
async def app(audit: MemoryAuditStore) -> AsyncIterator[App]:
    application = App("test", policy=policy(), audit=audit, default_timeout=5.0)
    yield application
    await application.close()


async def records(store: MemoryAuditStore) -> list[AuditRecord]:
    await store.flush()
    return [r async for r in store.records()]
