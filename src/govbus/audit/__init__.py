"""The audit layer: hash-chained, append-only records of every decision, off the hot path.

``SqlAuditStore`` (SQLite by default, PostgreSQL by URL) is the production store;
``MemoryAuditStore`` is the same protocol in memory. Both chain records with
:func:`record_hash` and are checked by :func:`verify_records`; ``verify_url`` backs
``govbus audit verify``.
"""

from govbus.audit.base import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    AuditStore,
    Durability,
    VerifyReport,
)
from govbus.audit.chain import record_hash, verify_records
from govbus.audit.database import count_url, iter_records_url, verify_url
from govbus.audit.memory import MemoryAuditStore
from govbus.audit.spool import SpoolingAuditStore
from govbus.audit.sql import SqlAuditStore

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditRecord",
    "AuditStore",
    "Durability",
    "MemoryAuditStore",
    "SpoolingAuditStore",
    "SqlAuditStore",
    "VerifyReport",
    "count_url",
    "iter_records_url",
    "record_hash",
    "verify_records",
    "verify_url",
]
