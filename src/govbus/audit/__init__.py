"""The audit layer: hash-chained, append-only records of every decision, off the hot path.

``SqlAuditStore`` (SQLite by default, PostgreSQL by URL) is the production store;
``MemoryAuditStore`` is the same protocol in memory. Both chain records with
:func:`record_hash` and are checked by :func:`verify_records`; ``verify_url`` backs
``govbus audit verify``, ``AuditTail`` ``govbus audit tail``, ``export_url`` and
``verify_export`` ``govbus audit export`` and ``verify --export``, and ``prune_url`` (which
leaves an :class:`AuditCheckpoint` per pruned chain) ``govbus audit prune``.
"""

from govbus.audit.base import (
    GENESIS_HASH,
    AuditCheckpoint,
    AuditEvent,
    AuditRecord,
    AuditStore,
    Durability,
    VerifyReport,
)
from govbus.audit.chain import record_hash, verify_records
from govbus.audit.database import count_url, iter_records_url, verify_url
from govbus.audit.export import ExportFilter, export_url, verify_export
from govbus.audit.memory import MemoryAuditStore
from govbus.audit.prune import PruneReport, prune_url
from govbus.audit.spool import SpoolingAuditStore
from govbus.audit.sql import SqlAuditStore
from govbus.audit.tail import AuditTail

__all__ = [
    "GENESIS_HASH",
    "AuditCheckpoint",
    "AuditEvent",
    "AuditRecord",
    "AuditStore",
    "AuditTail",
    "Durability",
    "ExportFilter",
    "MemoryAuditStore",
    "PruneReport",
    "SpoolingAuditStore",
    "SqlAuditStore",
    "VerifyReport",
    "count_url",
    "export_url",
    "iter_records_url",
    "prune_url",
    "record_hash",
    "verify_export",
    "verify_records",
    "verify_url",
]
