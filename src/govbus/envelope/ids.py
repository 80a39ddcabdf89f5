"""Time-sortable unique identifiers (UUIDv7, RFC 9562).

Python 3.11 has no ``uuid.uuid7``; the layout is twelve lines, so it lives here rather than in a
dependency. Within one millisecond a 12-bit counter keeps ids from this process strictly
increasing, so sorting by id sorts by creation order.
"""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bits come from os.urandom in 4 KiB chunks: one syscall per 512 ids. A syscall per id
# would release the GIL on the hot path and let the audit writer thread stall the event loop.
_CHUNK = 4096
_pool = b""
_pos = _CHUNK


def _reset_after_fork() -> None:
    # A forked child must not replay the parent's random pool (it would duplicate ids).
    global _pos
    _pos = _CHUNK


os.register_at_fork(after_in_child=_reset_after_fork)


def new_id() -> str:
    """Return a new UUIDv7 string such as ``019a8f2e-5b1c-7a00-8f3e-2d1c0b9a8f7e``."""
    global _last_ms, _counter, _pool, _pos
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
        if _pos >= _CHUNK:
            _pool, _pos = os.urandom(_CHUNK), 0
        raw = _pool[_pos : _pos + 8]
        _pos += 8
    rand = int.from_bytes(raw, "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
