"""``MemoryAuditStore``: the audit store protocol in memory, for tests and in-process drills.

Records are sealed with the same :mod:`govbus.audit.chain` code as the SQL store, so a chain
that verifies here verifies there. Tests tamper by editing :attr:`MemoryAuditStore.stored` (a
plain list of frozen records: replace, delete or swap entries) or :attr:`MemoryAuditStore.heads`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from govbus.audit.base import GENESIS_HASH, AuditEvent, AuditRecord, VerifyReport
from govbus.audit.chain import chain_row, default_node_name, row_to_record, verify_records
from govbus.errors import AuditError

__all__ = ["MemoryAuditStore"]


class MemoryAuditStore:
    """An in-memory, hash-chained audit store; ``submit`` appends synchronously.

    Example:
        >>> import asyncio
        >>> from datetime import UTC, datetime
        >>> async def demo() -> bool:
        ...     store = MemoryAuditStore(node="test")
        ...     await store.start()
        ...     store.submit(AuditEvent(kind="admin", ts=datetime.now(UTC), outcome="start"))
        ...     report = await store.verify()
        ...     await store.close()
        ...     return report.ok
        >>> asyncio.run(demo())
        True

    Attributes:
        stored: every record in write order; tests may mutate it to simulate tampering.
        heads: per chain, the last ``(seq, hash)``, kept apart from ``stored`` as the SQL store
            keeps its head rows, so deleting the tail of ``stored`` is detected.
    """

    def __init__(self, *, node: str | None = None) -> None:
        self._node = node if node is not None else default_node_name()
        self.stored: list[AuditRecord] = []
        self.heads: dict[str, tuple[int, str]] = {}
        # The writer's own position: tampering with ``stored`` or ``heads`` must not change
        # where the next record chains on, exactly as for the SQL store's writer.
        self._seq = 0
        self._hash = GENESIS_HASH
        self._started = False
        self._closed = False

    @property
    def node(self) -> str:
        """The name of the chain this store appends to."""
        return self._node

    async def start(self) -> None:
        """Mark the store open; idempotent."""
        if self._closed:
            raise AuditError("audit store is closed; create a new one")
        self._started = True

    def submit(self, event: AuditEvent) -> None:
        """Seal ``event`` as the next record of this node's chain and append it."""
        if not self._started or self._closed:
            state = "closed" if self._closed else "not started (await store.start() first)"
            raise AuditError(f"cannot write audit event: the audit store is {state}")
        seq = self._seq + 1
        row = chain_row(self._node, seq, self._hash, event)
        self.stored.append(row_to_record(row))
        self._seq, self._hash = seq, row["hash"]
        self.heads[self._node] = (seq, self._hash)

    async def write(self, event: AuditEvent) -> None:
        """Same as :meth:`submit`: memory is "committed" at once."""
        self.submit(event)

    async def flush(self) -> None:
        """Nothing to flush: every submitted event is already stored."""

    async def close(self) -> None:
        """Refuse further writes; the records stay readable. Idempotent."""
        self._closed = True

    async def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        """Stored records ordered by node then sequence (a snapshot of :attr:`stored`)."""
        snapshot = sorted(
            (r for r in self.stored if node is None or r.node == node),
            key=lambda r: (r.node, r.seq),
        )
        for record in snapshot:
            yield record

    async def verify(self, *, node: str | None = None) -> VerifyReport:
        """Verify :attr:`stored` against :attr:`heads`, in list order (so a swap is detected).

        Args:
            node: verify only this chain; all chains when None.
        """
        if node is None:
            return verify_records(self.stored, dict(self.heads))
        heads = {node: self.heads[node]} if node in self.heads else {}
        return verify_records((r for r in self.stored if r.node == node), heads)
