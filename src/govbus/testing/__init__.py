"""Public test doubles and the bus conformance suite, for testing apps built on govbus.

- :class:`BusConformance`: the abstract test class every bus adapter subclasses.
- :class:`FakeClock`, :class:`RecordingAgent`: doubles for agents and time.
- :class:`MemoryAuditStore`: the audit protocol in memory, with the real hash chain.
- :class:`SpanCapture`: an OpenTelemetry SDK provider that keeps finished spans for asserts.
- :class:`MetricCapture`: an OpenTelemetry SDK meter provider whose values a test reads.
"""

from govbus.audit import MemoryAuditStore
from govbus.testing.conformance import BusConformance
from govbus.testing.doubles import FakeClock, RecordingAgent
from govbus.testing.metrics import MetricCapture
from govbus.testing.spans import SpanCapture

__all__ = [
    "BusConformance",
    "FakeClock",
    "MemoryAuditStore",
    "MetricCapture",
    "RecordingAgent",
    "SpanCapture",
]
