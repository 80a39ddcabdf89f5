"""Failure drills: faults injected into a fresh app through the fault-injection layer
(:mod:`govbus.drills.faults`), with expectations checked against the app's own evidence.

``govbus drill run drills/`` runs every drill file and exits 1 if any fails; see
``drills/README.md`` for the file format and :mod:`govbus.drills.runner` for how each
mechanism is switched off to prove a drill can fail. A drill with ``bus: nats`` runs on
:class:`~govbus.bus.nats.NatsBus` against a private ``nats-server``
(:mod:`govbus.drills.broker`).
"""

from govbus.drills.broker import NatsServer
from govbus.drills.faults import (
    BrokerRestarts,
    DuplicatingBus,
    FaultyAgent,
    FaultyAuditStore,
    FaultyModel,
    ForgetfulIdempotency,
    InjectedFault,
    SharedPool,
    Trigger,
)
from govbus.drills.runner import Check, DrillResult, run_drill, run_drills
from govbus.drills.spec import (
    MECHANISMS,
    Drill,
    Fault,
    drill_schema,
    find_drills,
    generated_schema,
    load_drill,
    parse_drill,
)

__all__ = [
    "MECHANISMS",
    "BrokerRestarts",
    "Check",
    "Drill",
    "DrillResult",
    "DuplicatingBus",
    "Fault",
    "FaultyAgent",
    "FaultyAuditStore",
    "FaultyModel",
    "ForgetfulIdempotency",
    "InjectedFault",
    "NatsServer",
    "SharedPool",
    "Trigger",
    "drill_schema",
    "find_drills",
    "generated_schema",
    "load_drill",
    "parse_drill",
    "run_drill",
    "run_drills",
]
