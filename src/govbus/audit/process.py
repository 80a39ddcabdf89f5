"""The audit writer process: the child side of ``SqlAuditStore(..., writer="process")``.

The parent's feeder thread sends batches of events as plain tuples; this process seals them into
the chain and inserts them with the same :class:`~govbus.audit.writer.ChainWriter` the writer
thread uses, so hashing and inserts run on another core instead of under the parent's GIL.

Wire format on the duplex pipe (one message per ``send_bytes``/``send``):

* parent -> child: ``b"B" + batch id (8 bytes, little endian) + pickle([event tuples])``, and
  ``b"C"`` to commit what was sent, release the database and exit.
* child -> parent (pickled tuples): ``("ready", node, where)`` or
  ``("error", error type name, message)`` once after start; then per batch, in order,
  ``("committed", batch_id, last_seq)`` or ``("failed", batch_id, last error)``; while a batch
  keeps failing ``("error", short text)``; forwarded log records ``("log", logger, level,
  text)``; and ``("closed",)`` last.

This module imports only the audit layer, the errors and libraries.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import signal
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from govbus.audit.base import AuditEvent
from govbus.audit.chain import canonical_bytes
from govbus.audit.writer import ChainWriter
from govbus.errors import AuditError

__all__ = ["CLOSE", "decode_batch", "encode_batch", "writer_main"]

_BATCH: Final = b"B"
CLOSE: Final = b"C"
_HEADER = struct.Struct("<q")
_TEXT_FIELDS: Final = range(9)  # every AuditEvent field but data; ts (1) is handled apart


def encode_batch(batch_id: int, events: Sequence[AuditEvent]) -> bytes:
    """Return the wire form of a batch: plain tuples, ``ts`` a datetime, ``data`` a dict.

    Runs in the parent's feeder thread, so the common case is one C-level ``tuple()`` per
    event; only a batch that does not pickle takes the per-event slow path.
    """
    tuples = [_plain(e) if type(e[9]) is dict else _with_dict_data(e) for e in events]
    try:
        body = pickle.dumps(tuples, protocol=5)
    except Exception:  # an odd value somewhere: make just the offending events plain
        body = pickle.dumps([_picklable(t) for t in tuples], protocol=5)
    return _BATCH + _HEADER.pack(batch_id) + body


#: Timestamps below 2**32 s (year 2106) travel as float seconds: a double's spacing there is
#: under 0.5 us, so ``datetime.fromtimestamp`` gives back the exact microsecond. Pickling a
#: datetime costs the feeder (which holds the parent's GIL) four times as much.
_EXACT_FLOAT_SECONDS: Final = 2.0**32


def _plain(event: AuditEvent) -> tuple[Any, ...]:
    ts = event[1]
    if type(ts) is datetime and ts.tzinfo is not None:
        seconds = ts.timestamp()
        if 0.0 <= seconds < _EXACT_FLOAT_SECONDS:
            return (event[0], seconds, *event[2:])
    return tuple(event)


def _with_dict_data(event: AuditEvent) -> tuple[Any, ...]:
    data = event[9]
    if isinstance(data, Mapping):
        # A broken mapping stays as it is, for _picklable and the chain's coercion.
        with contextlib.suppress(Exception):
            data = dict(data)
    return (*event[:9], data, *event[10:])


def _picklable(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Replace what does not pickle by what the chain would have recorded for it anyway."""
    try:
        pickle.dumps(values, protocol=5)
        return values
    except Exception:
        pass
    out = list(values)
    for i in _TEXT_FIELDS:
        value = out[i]
        if i == 1:
            if not isinstance(value, datetime | float):  # float: seconds, see _plain
                out[i] = _safe_str(value)  # the chain records the write time and a note
            continue
        if value is not None and type(value) is not str:
            out[i] = _safe_str(value)
    try:
        out[9] = orjson.loads(canonical_bytes(out[9]))
    except TypeError as exc:
        # Exactly the note the chain writes when it cannot serialize data itself.
        out[9] = {"govbus_audit_note_data": f"event data not JSON-serializable: {exc}"}
    return tuple(out)


def _safe_str(value: object) -> str:
    # As the chain's coercion does: str subclasses lose their subclass, a broken __str__ is named.
    if isinstance(value, str):
        return str.__str__(value)
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


class _Opaque:
    """Stands in for a class the parent pickled that this process cannot import."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __str__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__}>"


class _TolerantUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            # A value of the caller's own (e.g. a class defined in __main__): record a
            # placeholder rather than lose the batch.
            return type(name, (_Opaque,), {"__module__": module, "__qualname__": name})


def decode_batch(payload: bytes) -> tuple[int, list[AuditEvent]]:
    """Inverse of :func:`encode_batch`: the batch id and its events."""
    (batch_id,) = _HEADER.unpack_from(payload, 1)
    body = io.BytesIO(memoryview(payload)[1 + _HEADER.size :])
    tuples = _TolerantUnpickler(body).load()
    make = AuditEvent._make
    from_seconds = datetime.fromtimestamp
    events = []
    for t in tuples:
        if type(t[1]) is float:
            t = (t[0], from_seconds(t[1], UTC), *t[2:])
        events.append(make(t))
    return batch_id, events


class _PipeAbort:
    """The abort flag as :class:`~govbus.audit.writer.ChainWriter` wants it, read from a pipe.

    Set once the parent wrote anything to its end, or closed it (the parent is gone).
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def is_set(self) -> bool:
        return bool(self._conn.poll())

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._conn.poll(timeout))


class _PipeLogHandler(logging.Handler):
    """Forward this process's audit log records to the parent, which logs them as its own."""

    def __init__(self, conn: Any) -> None:
        super().__init__(logging.WARNING)
        self._conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._conn.send(("log", record.name, record.levelno, text))
        except Exception:  # the parent is gone; nothing to log to
            self.handleError(record)


def writer_main(
    conn: Any, abort: Any, url: Any, node: str, write_timeout: float, spool: str | None = None
) -> None:
    """Entry point of the writer process: open, report ready, commit batches until told to close.

    Args:
        conn: this process's end of the duplex pipe.
        abort: the reading end of a pipe the parent writes to (or closes) to stop retrying a
            failing batch.
        url: the normalized SQLAlchemy URL.
        node: the chain to append to (named in the parent).
        write_timeout: see :class:`~govbus.audit.sql.SqlAuditStore`.
        spool: the sealed-row spool file, or None (see :class:`~govbus.audit.writer.RowSpool`).
    """
    # The parent decides when this process stops (Ctrl+C reaches the whole process group, and
    # the parent still wants to flush through us while it shuts down).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("govbus.audit")
    logger.addHandler(_PipeLogHandler(conn))
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        _serve(conn, _PipeAbort(abort), url, node, write_timeout, spool)
    finally:
        conn.close()
        abort.close()


def _serve(
    conn: Any, abort: _PipeAbort, url: Any, node: str, write_timeout: float, spool: str | None
) -> None:
    send = conn.send
    chain = ChainWriter(
        url,
        node,
        write_timeout=write_timeout,
        abort=abort,
        on_error=lambda text: send(("error", text)),
        spool=Path(spool) if spool is not None else None,
    )
    try:
        chain.open()
    except AuditError as exc:
        send(("error", type(exc).__name__, exc.message))
        return
    except Exception as exc:
        message = f"audit writer process cannot open {chain.where}: {type(exc).__name__}: {exc}"
        send(("error", "AuditError", message))
        return
    send(("ready", node, chain.where))
    try:
        while True:
            try:
                payload = conn.recv_bytes()
            except EOFError:
                return  # the parent is gone: nothing more will arrive and nobody to answer
            if payload[:1] != _BATCH:
                break
            batch_id, events = decode_batch(payload)
            if not abort.is_set() and chain.commit(events):
                send(("committed", batch_id, chain.seq))
            else:
                send(("failed", batch_id, chain.last_error or "the audit store was closed"))
    finally:
        chain.dispose()
    send(("closed",))


def main(argv: Sequence[str]) -> int:
    """``python -m govbus.audit.process CONN_FD ABORT_FD NODE``: run the writer child.

    The parent passes two inherited file descriptors (a socket for batches and replies, the
    reading end of the abort pipe), then sends ``(url, node, write_timeout, spool)``.
    """
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[0]))
    abort = Connection(int(argv[1]), writable=False)
    try:
        url, node, write_timeout, spool = conn.recv()
    except (EOFError, OSError):
        return 1  # the parent went away before configuring us
    writer_main(conn, abort, url, node, write_timeout, spool)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
