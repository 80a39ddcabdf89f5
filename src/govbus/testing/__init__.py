"""Public test doubles and the bus conformance suite, for testing apps built on govbus.

- :class:`BusConformance`: the abstract test class every bus adapter subclasses.
- :class:`FakeClock`, :class:`RecordingAgent`: doubles for agents and time.
- :class:`MemoryAuditStore`: the audit protocol in memory, with the real hash chain.
"""

from govbus.audit import MemoryAuditStore
from govbus.testing.conformance import BusConformance
from govbus.testing.doubles import FakeClock, RecordingAgent

__all__ = ["BusConformance", "FakeClock", "MemoryAuditStore", "RecordingAgent"]
