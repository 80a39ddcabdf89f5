"""``SpoolingAuditStore``: keep auditing through an outage by spooling events to a local file.

An audit store that cannot be written spools to a local file and is replayed when it comes back;
if the spool also fails, dispatch fails closed.

:class:`SpoolingAuditStore` wraps any :class:`~govbus.audit.base.AuditStore` (the *inner*
store). While the inner store takes events, every call passes straight through and nothing
touches the disk. Once the inner store raises :class:`~govbus.errors.AuditUnavailableError`,
that event and every later one are appended to the spool file instead, and a background task
replays the spool into the inner store every ``retry_interval`` seconds until it is empty; then
events go straight through again.

Guarantees:

* **Ordered.** Once one event is spooled, every later event is spooled behind it until the whole
  spool has been replayed. The switch back to direct writes happens with no ``await`` between
  "the spool is empty" and "the next event goes direct", so no event can overtake a spooled
  one: the inner store receives events in submission order.
* **Exactly once into the inner store.** Replay hands a batch to the inner store, waits for its
  ``flush``, and only then cuts the batch off the spool by atomically replacing the file with
  the rest (temp file, ``fsync``, ``os.replace``). A batch whose flush failed is never handed
  over again; a later flush confirms it. The one window left is a crash between the inner
  store's commit and the replace: the next run then replays that batch again (a duplicate,
  never a loss).
* **The chain stays verifiable.** The spool holds events, not records: sequence numbers and
  hashes are assigned when the inner store accepts a replayed event, so its chain has no gap
  and no fork; spooled records are merely sealed later than their ``ts``.
* **Durable.** ``write()`` (``sync`` durability) returns only once its spooled line is
  ``fsync``-ed. ``submit()`` (``batch`` durability) appends without ``fsync``: a crash of the
  process loses nothing, a crash of the machine may lose the last lines (as it loses the inner
  store's in-memory queue).
* **Fail closed.** If the spool cannot be appended to either (disk full, permissions, a
  directory that cannot be created), ``submit`` and ``write`` raise
  :class:`~govbus.errors.AuditUnavailableError` naming the spool and the inner store's error. A
  failed append is truncated away, so no half line is left behind.

Privacy: the spool is a local file, usually less protected than the database, so it never holds
payload bytes. Each event is spooled exactly as the inner store would seal it, by the stores' own
:func:`~govbus.audit.chain.chain_row`: the payload is replaced by its sha256 in
``data["payload_sha256"]``, and the replayed event (``payload=None``, that ``data``) yields
exactly the record the original event would have. The file is created with mode ``0600``.

Spool format: JSON Lines, one event per line, each line appended with a single ``write``::

    {"v":1,"kind":"decision","ts":"2026-11-21T10:00:00.000000Z","outcome":"allow",
     "message_id":"m-1","correlation_id":null,"msg_type":"order.created","sender":"a",
     "recipient":"b","policy_sha256":null,"data":{"payload_sha256":"9f86...","rule":"r1"}}

(one line in the file). ``ts`` is the canonical RFC 3339 (ISO 8601) UTC timestamp of
:func:`~govbus.audit.chain.format_ts`. A last line without its newline (a crash mid-append) is
dropped with a warning; any other line that does not parse stops replay there, logged with the
path and line number, until an operator repairs or removes it (stop the process first).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from govbus.audit.base import GENESIS_HASH, AuditEvent, AuditRecord, AuditStore, VerifyReport
from govbus.audit.chain import chain_row, parse_ts
from govbus.errors import AuditError, AuditUnavailableError

__all__ = ["SPOOL_VERSION", "SpoolingAuditStore", "parse_spool_line", "spool_line"]

_log = logging.getLogger("govbus.audit.spool")

#: The ``"v"`` of every spool line this module writes and the only one it reads.
SPOOL_VERSION: Final = 1

_OPTIONAL_TEXT: Final = (
    "message_id",
    "correlation_id",
    "msg_type",
    "sender",
    "recipient",
    "policy_sha256",
)

#: Fewest events replay hands to the inner store between two flushes. A pass takes a quarter of
#: the spool when that is more, so rewriting the rest after each batch stays linear overall.
_MIN_BATCH: Final = 1000

_COPY_CHUNK: Final = 1 << 20


def spool_line(event: AuditEvent) -> bytes:
    """Return ``event`` as one spool line (JSON, newline-terminated), without payload bytes.

    The fields are those :func:`~govbus.audit.chain.chain_row` seals, so ``data`` already
    holds ``payload_sha256`` in place of the payload, and odd values are coerced exactly as the
    inner store would coerce them.

    Example:
        >>> from datetime import UTC, datetime
        >>> event = AuditEvent("admin", datetime(2026, 1, 1, tzinfo=UTC), "ok", payload=b"{}")
        >>> line = spool_line(event)
        >>> b"payload_sha256" in line and line.endswith(b"\\n")
        True
    """
    row = chain_row("spool", 1, GENESIS_HASH, event)
    fields: dict[str, Any] = {
        "v": SPOOL_VERSION,
        "kind": row["kind"],
        "ts": row["ts"],
        "outcome": row["outcome"],
    }
    for name in _OPTIONAL_TEXT:
        fields[name] = row[name]
    fields["data"] = orjson.Fragment(row["data"])
    return orjson.dumps(fields) + b"\n"


def parse_spool_line(line: bytes) -> AuditEvent:
    """Rebuild the event of one spool line (``payload`` is None; its hash is in ``data``).

    Raises:
        ValueError: the line is not a spool line of this version; the message says why.

    Example:
        >>> from datetime import UTC, datetime
        >>> event = AuditEvent("admin", datetime(2026, 1, 1, tzinfo=UTC), "ok", data={"a": 1})
        >>> parse_spool_line(spool_line(event)) == event
        True
    """
    try:
        fields = orjson.loads(line)
    except ValueError as exc:  # orjson.JSONDecodeError
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise ValueError("not a JSON object")
    version = fields.get("v")
    if version != SPOOL_VERSION:
        raise ValueError(f"spool format version {version!r}, expected {SPOOL_VERSION}")
    missing = [
        name for name in ("kind", "ts", "outcome", *_OPTIONAL_TEXT, "data") if name not in fields
    ]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    for name in ("kind", "ts", "outcome"):
        if not isinstance(fields[name], str):
            raise ValueError(f"{name} is not a string")
    for name in _OPTIONAL_TEXT:
        if fields[name] is not None and not isinstance(fields[name], str):
            raise ValueError(f"{name} is neither a string nor null")
    try:
        ts = parse_ts(fields["ts"])
    except ValueError as exc:
        raise ValueError(f"ts is not a timestamp ({exc})") from exc
    return AuditEvent(
        kind=fields["kind"],
        ts=ts,
        outcome=fields["outcome"],
        message_id=fields["message_id"],
        correlation_id=fields["correlation_id"],
        msg_type=fields["msg_type"],
        sender=fields["sender"],
        recipient=fields["recipient"],
        policy_sha256=fields["policy_sha256"],
        data=fields["data"],
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation, rename or removal in ``directory`` durable (POSIX)."""
    if os.name != "posix":  # pragma: no cover - directories cannot be opened elsewhere
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpoolingAuditStore:
    """An :class:`~govbus.audit.base.AuditStore` that spools to a local file while ``inner``
    cannot be written, and replays the spool, in order, once it can.

    See the module documentation for the guarantees and the spool format. ``node``,
    ``records`` and ``verify`` are the inner store's.

    What the inner store must do: raise :class:`~govbus.errors.AuditUnavailableError` from
    ``submit`` and ``write`` only for an event it did not take, and commit events in the order
    it took them; ``flush`` confirms everything taken so far. (``SqlAuditStore.write`` keeps
    the event queued when it times out, so a timed-out ``write`` would reach it twice: once
    from its queue, once from the spool.)

    Use it from the event loop's thread, like the orchestrator does: spool appends (and the
    ``fsync`` of a spooled ``write``) run on the loop, which is fine for a file written only
    during outages.

    Example:
        >>> import asyncio, tempfile
        >>> from datetime import UTC, datetime
        >>> from govbus.audit.memory import MemoryAuditStore
        >>> async def demo(directory: str) -> tuple[bool, bool]:
        ...     store = SpoolingAuditStore(MemoryAuditStore(node="n"), f"{directory}/spool")
        ...     await store.start()
        ...     await store.write(AuditEvent("admin", datetime.now(UTC), "start"))
        ...     report = await store.verify()
        ...     await store.close()
        ...     return report.ok, store.spool_path.exists()
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asyncio.run(demo(tmp))
        (True, False)

    Args:
        inner: the store to write to (typically a ``SqlAuditStore``).
        path: the spool file. Its directory is created on the first spooled event; the file
            exists only while events are spooled. Give each process its own spool: two stores
            on one file would replay each other's events.
        retry_interval: seconds between replay attempts while spooling.
        close_timeout: most seconds :meth:`close` spends on its last replay attempt.
    """

    def __init__(
        self,
        inner: AuditStore,
        path: str | Path,
        *,
        retry_interval: float = 1.0,
        close_timeout: float = 5.0,
    ) -> None:
        if retry_interval <= 0:
            raise ValueError("retry_interval must be positive")
        if close_timeout < 0:
            raise ValueError("close_timeout must not be negative")
        self._inner = inner
        self._path = Path(path)
        self._tmp = self._path.with_name(self._path.name + ".tmp")
        self._retry_interval = retry_interval
        self._close_timeout = close_timeout
        self._state: Literal["new", "started", "closing", "closed"] = "new"
        self._spooling = False
        self._count = 0  # complete event lines in the spool file
        # The first events of the file that replay has handed to the inner store (and the bytes
        # they take). Never handed over twice: a later flush confirms them, then they are cut.
        self._head_count = 0
        self._head_bytes = 0
        self._head_confirmed = False
        self._fd: int | None = None  # the spool, open for appending
        # Set when a failed append left bytes that could not be truncated at once: the good
        # length, cut back to before the next append (nothing is ever appended after garbage).
        self._good_size: int | None = None
        self._spooled_total = 0
        self._replayed_total = 0
        self._episode_replayed = 0  # replayed since spooling began, for the recovery log line
        self._accepted = 0  # events taken (directly or into the spool), to notice reordering
        self._direct_taken = 0  # events handed straight to the inner store ...
        self._direct_confirmed = 0  # ... and how many of them a successful flush covered
        self._inner_error = "unknown error"
        self._stuck: str | None = None  # why replay cannot get past a spool line
        self._logged_failure: str | None = None
        self._torn_warned = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one replay pass at a time

    # -- properties -----------------------------------------------------------------------

    @property
    def node(self) -> str:
        """The inner store's chain name."""
        return self._inner.node

    @property
    def inner(self) -> AuditStore:
        """The wrapped store."""
        return self._inner

    @property
    def spool_path(self) -> Path:
        """The spool file (it exists only while events are spooled)."""
        return self._path

    @property
    def spooled(self) -> int:
        """Events in the spool not yet confirmed by the inner store."""
        return self._count - (self._head_count if self._head_confirmed else 0)

    @property
    def spooled_total(self) -> int:
        """Events appended to the spool by this store since it was created."""
        return self._spooled_total

    @property
    def replayed_total(self) -> int:
        """Spooled events the inner store has confirmed, since this store was created."""
        return self._replayed_total

    @property
    def spooling(self) -> bool:
        """True while new events go to the spool (the inner store is down or still behind)."""
        return self._spooling

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the inner store; replay events a crashed earlier run left in the spool.

        With leftover events the store starts in spooling mode, so they reach the inner store
        before any new event. Errors of the inner store's ``start`` propagate. Idempotent.

        Raises:
            AuditError: the store is closed, or the spool exists but cannot be read.
        """
        if self._state == "started":
            return
        if self._state != "new":
            raise AuditError("audit store is closed; create a new one")
        self._recover()
        await self._inner.start()
        self._state = "started"
        if self._spooling:
            await self._attempt()
            if self._spooling:
                self._ensure_task()

    async def close(self) -> None:
        """Stop replaying, try one last replay (bounded by ``close_timeout``), close inner.

        Events still spooled stay in the file (a WARNING gives their count and the path) and
        are replayed by the next store started on it. Errors of the inner store's ``close``
        propagate. Idempotent.
        """
        if self._state in ("closing", "closed"):
            return
        was_started = self._state == "started"
        self._state = "closing"
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])  # unlike awaiting it, keeps a cancellation of close()
        if was_started and self._spooling:
            try:
                async with asyncio.timeout(self._close_timeout):
                    await self._attempt()
            except TimeoutError:
                pass
            except Exception as exc:
                self._log_failure(exc)
        inner_closed = False
        try:
            await self._inner.close()
            inner_closed = True
        finally:
            if inner_closed and self._head_count and not self._head_confirmed:
                # The inner store's close committed what it had taken: the head is in.
                self._confirm_head()
                self._compact()
            self._close_fd()
            self._state = "closed"
            if self._count:
                _log.warning(
                    "audit store closed with %d events still spooled in %s (%s); they are "
                    "replayed when a store starts on this spool",
                    self.spooled,
                    self._path,
                    self._stuck or f"the audit store is unavailable: {self._inner_error}",
                )

    # -- writing --------------------------------------------------------------------------

    def submit(self, event: AuditEvent) -> None:
        """Hand ``event`` to the inner store, or append it to the spool (no ``fsync``).

        It goes to the spool while the spool holds events or the inner store is known to be
        down, and when the inner store's ``submit`` raises
        :class:`~govbus.errors.AuditUnavailableError` (which starts spooling).

        Raises:
            AuditError: the store is not started, or is closing or closed.
            AuditUnavailableError: the inner store is down and the spool cannot be appended to
                either (fail closed); the message names the spool and both errors.
        """
        self._check_open()
        if not self._spooling:
            try:
                self._inner.submit(event)
            except AuditUnavailableError as exc:
                self._begin_spooling(exc)
            else:
                self._direct_taken += 1
                self._accepted += 1
                return
        self._append(event, sync=False)

    async def write(self, event: AuditEvent) -> None:
        """Write ``event`` to the inner store and wait for the commit, or spool it durably.

        A spooled event counts as written: its line is ``fsync``-ed before this returns.

        Raises:
            AuditError: the store is not started, or is closing or closed.
            AuditUnavailableError: the inner store is down and the spool cannot be appended to
                either (fail closed); the message names the spool and both errors.
        """
        self._check_open()
        if not self._spooling:
            before = self._accepted
            try:
                await self._inner.write(event)
            except AuditUnavailableError as exc:
                self._begin_spooling(exc)
                overtaken = self._accepted - before
                if overtaken:
                    _log.warning(
                        "audit event spooled after %d later events: the audit store failed its "
                        "write only after taking them (%s)",
                        overtaken,
                        exc,
                    )
            else:
                self._accepted += 1
                return
        self._append(event, sync=True)

    async def flush(self) -> None:
        """Replay what is spooled (one attempt), then flush the inner store unless still down.

        Events safely in the spool count as flushed: they are durable and will be replayed, so
        this does not raise just because the inner store is down.

        Raises:
            AuditUnavailableError: the inner store is down and events handed to it *before* it
                failed (not spooled) are not confirmed as committed.
            AuditError: replay is stuck at a malformed spool line (the message names the path
                and line), or another error of the inner store.
        """
        if self._spooling:
            await self._attempt()
            if self._spooling:
                if self._stuck is not None:
                    raise AuditError(self._stuck)
                unconfirmed = self._direct_taken - self._direct_confirmed
                if unconfirmed:
                    raise AuditUnavailableError(
                        f"{unconfirmed} audit events handed to the audit store before it became "
                        f"unavailable are not confirmed ({self._inner_error}); later events "
                        f"are spooled to {self._path}"
                    )
                return
        try:
            await self._flush_inner()
        except AuditUnavailableError as exc:
            if self._state == "started":
                self._begin_spooling(exc)
            raise

    async def replay(self) -> bool:
        """Replay the spool now (one attempt) and return True if direct writes have resumed.

        The background task does this every ``retry_interval`` seconds while spooling.
        """
        await self._attempt()
        return not self._spooling

    # -- reading --------------------------------------------------------------------------

    def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        """The inner store's records (spooled events are not records yet)."""
        return self._inner.records(node=node)

    async def verify(self) -> VerifyReport:
        """Verify the inner store's chains."""
        return await self._inner.verify()

    # -- internals: modes -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state != "started":
            state = {
                "new": "not started (await store.start() first)",
                "closing": "closing",
                "closed": "closed",
            }[self._state]
            raise AuditError(f"cannot write audit event: the audit store is {state}")

    def _begin_spooling(self, exc: AuditUnavailableError) -> None:
        self._inner_error = str(exc)
        if not self._spooling:
            self._spooling = True
            self._episode_replayed = 0
            _log.warning(
                "audit store unavailable (%s); spooling audit events to %s until it recovers",
                exc,
                self._path,
            )
        self._ensure_task()

    def _resume_direct(self) -> None:
        """Switch back to direct writes; the caller saw the spool empty, with no await since."""
        self._close_fd()
        with contextlib.suppress(OSError):
            os.unlink(self._path)  # only garbage can be left (a torn line, nothing complete)
        self._good_size = None
        self._spooling = False
        self._stuck = None
        self._logged_failure = None
        self._torn_warned = False
        _log.info(
            "audit store available again; replayed %d spooled audit events from %s",
            self._episode_replayed,
            self._path,
        )

    def _ensure_task(self) -> None:
        if self._state != "started" or (self._task is not None and not self._task.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: start(), flush() or the next spooled event replays
            return
        self._task = loop.create_task(
            self._replay_forever(), name=f"govbus-audit-spool[{self._path}]"
        )

    async def _replay_forever(self) -> None:
        while self._spooling and self._state == "started":
            await asyncio.sleep(self._retry_interval)
            try:
                await self._attempt()
            except Exception as exc:  # keep trying; say so once per distinct failure
                self._log_failure(exc)

    def _log_failure(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text != self._logged_failure:
            self._logged_failure = text
            _log.error("replaying audit spool %s failed: %s", self._path, text)

    # -- internals: replay ----------------------------------------------------------------

    async def _attempt(self) -> bool:
        """One replay pass; False while the inner store is down or replay is stuck."""
        try:
            return await self._replay_pass()
        except AuditUnavailableError as exc:
            self._inner_error = str(exc)
            return False

    async def _flush_inner(self) -> None:
        taken = self._direct_taken
        await self._inner.flush()
        self._direct_confirmed = max(self._direct_confirmed, taken)

    async def _replay_pass(self) -> bool:
        """Hand the spool to the inner store batch by batch until it is empty or fails.

        Every state change happens between awaits, so a cancelled pass (close's timeout) leaves
        a consistent state: at worst a handed-over head that a later flush confirms.
        """
        async with self._lock:
            while self._spooling:
                flushed = False
                if self._head_count and not self._head_confirmed:
                    await self._flush_inner()
                    flushed = True
                    self._confirm_head()
                if self._head_confirmed and not self._compact():
                    return False
                if self._count == 0:
                    if not flushed:
                        await self._flush_inner()  # up, and everything taken is committed
                    if self._count == 0:  # nothing was spooled while the flush ran
                        self._resume_direct()
                        return True
                    continue
                if not self._hand_over():
                    return False
            return True

    def _confirm_head(self) -> None:
        self._head_confirmed = True
        self._replayed_total += self._head_count
        self._episode_replayed += self._head_count

    def _hand_over(self) -> bool:
        """Submit the next batch from the head of the spool; False if none was taken."""
        try:
            events, ends = self._read_head(max(_MIN_BATCH, self._count // 4))
        except OSError as exc:
            self._log_failure(exc)
            return False
        for event, end in zip(events, ends, strict=True):
            try:
                self._inner.submit(event)
            except AuditUnavailableError as exc:
                self._inner_error = str(exc)
                break
            self._head_count += 1
            self._head_bytes = end
        return self._head_count > 0

    def _read_head(self, limit: int) -> tuple[list[AuditEvent], list[int]]:
        """Parse up to ``limit`` events from the start of the spool, with their end offsets."""
        events: list[AuditEvent] = []
        ends: list[int] = []
        offset = 0
        good_size = self._good_size
        problem: str | None = None
        at_end = True
        with open(self._path, "rb") as spool:
            for number, line in enumerate(spool, 1):
                if good_size is not None and offset + len(line) > good_size:
                    break  # the remains of a failed append, cut before the next one
                if not line.endswith(b"\n"):
                    if not self._torn_warned:
                        self._torn_warned = True
                        _log.warning(
                            "audit spool %s: ignoring a torn last line (line %d, %d bytes "
                            "without a newline)",
                            self._path,
                            number,
                            len(line),
                        )
                    break
                try:
                    event = parse_spool_line(line)
                except ValueError as exc:
                    problem = (
                        f"audit spool {self._path} line {number} is malformed ({exc}); "
                        f"replay stops before it: repair or remove the line, then restart"
                    )
                    break
                offset += len(line)
                events.append(event)
                ends.append(offset)
                if len(events) >= limit:
                    at_end = False
                    break
        if problem is not None:
            if self._stuck is None:
                _log.error("%s", problem)
            self._stuck = problem
        elif at_end:
            self._stuck = None
        return events, ends

    def _compact(self) -> bool:
        """Cut the confirmed head off the spool, atomically; False (logged) if the disk says no.

        After a failure the head stays confirmed in memory, so it is not replayed again by this
        process (but would be after a crash).
        """
        try:
            if self._head_count == self._count:
                self._close_fd()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path)
                with contextlib.suppress(OSError):
                    _fsync_dir(self._path.parent)
            else:
                self._rewrite_rest()
        except OSError as exc:
            self._log_failure(exc)
            return False
        self._good_size = None
        self._count -= self._head_count
        self._head_count = self._head_bytes = 0
        self._head_confirmed = False
        return True

    def _rewrite_rest(self) -> None:
        """Replace the spool with its bytes after the head (temp file, fsync, rename)."""
        remaining = None if self._good_size is None else self._good_size - self._head_bytes
        try:
            with (
                open(self._path, "rb") as source,
                open(self._tmp, "wb", opener=_private_opener) as target,
            ):
                source.seek(self._head_bytes)
                while remaining is None or remaining > 0:
                    size = _COPY_CHUNK if remaining is None else min(_COPY_CHUNK, remaining)
                    chunk = source.read(size)
                    if not chunk:
                        break
                    target.write(chunk)
                    if remaining is not None:
                        remaining -= len(chunk)
                target.flush()
                os.fsync(target.fileno())
            os.replace(self._tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            raise
        self._close_fd()  # it still points at the replaced file
        with contextlib.suppress(OSError):
            _fsync_dir(self._path.parent)

    # -- internals: the spool file --------------------------------------------------------

    def _append(self, event: AuditEvent, *, sync: bool) -> None:
        line = spool_line(event)
        try:
            fd = self._open()
            if self._good_size is not None:
                os.ftruncate(fd, self._good_size)
                self._good_size = None
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)")
                if sync:
                    os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    self._good_size = start
                raise
        except OSError as exc:
            raise AuditUnavailableError(
                f"cannot spool audit event to {self._path} ({_reason(exc)}) while the audit "
                f"store is unavailable ({self._inner_error})"
            ) from exc
        self._count += 1
        self._spooled_total += 1
        self._accepted += 1
        self._ensure_task()

    def _open(self) -> int:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            created = not self._path.exists()
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if created:
                try:
                    _fsync_dir(self._path.parent)
                except OSError:
                    os.close(fd)
                    raise
            self._fd = fd
        return self._fd

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _recover(self) -> None:
        """Count the events an earlier run left in the spool; cut a torn last line."""
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)  # a rewrite cut short: the spool itself is intact
        count = size = 0
        torn: int | None = None
        problem: str | None = None
        try:
            with open(self._path, "rb") as spool:
                for number, line in enumerate(spool, 1):
                    if not line.endswith(b"\n"):
                        torn = number
                        break
                    if problem is None:
                        try:
                            parse_spool_line(line)
                        except ValueError as exc:
                            problem = (
                                f"audit spool {self._path} line {number} is malformed ({exc}); "
                                "replay stops before it: repair or remove the line, then restart"
                            )
                    count += 1
                    size += len(line)
        except (FileNotFoundError, NotADirectoryError):
            return  # nothing was spooled here
        except OSError as exc:
            raise AuditError(
                f"cannot read the audit spool {self._path}: {_reason(exc)}; events an "
                "earlier run spooled there would be lost or reordered"
            ) from exc
        if torn is not None:
            _log.warning(
                "audit spool %s: ignoring a torn last line (line %d, no newline: a crash while "
                "appending)",
                self._path,
                torn,
            )
            self._torn_warned = True
            try:
                os.truncate(self._path, size)
            except OSError:
                self._good_size = size  # cut before the next append
        if count == 0:
            self._close_fd()
            with contextlib.suppress(OSError):
                os.unlink(self._path)
            return
        self._count = count
        self._spooling = True
        self._episode_replayed = 0
        self._inner_error = "events left in the spool by an earlier run"
        _log.warning(
            "found %d audit events spooled by an earlier run in %s; replaying them before any "
            "new event",
            count,
            self._path,
        )
        if problem is not None:
            self._stuck = problem
            _log.error("%s", problem)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
