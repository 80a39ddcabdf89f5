"""``SqlAuditStore``: the hash-chained audit log in SQLite (default) or PostgreSQL.

The asyncio hot path never touches the database. :meth:`SqlAuditStore.submit` appends the event
to a deque and returns; one dedicated writer thread takes batches off the deque, seals them into
the chain (sequence numbers and hashes, see :mod:`govbus.audit.chain`), inserts each batch in
as few statements as the database allows (multi-row INSERT on SQLite, COPY on PostgreSQL) and
moves the node's head row in the same transaction. ``write()`` waits for
the commit of its batch, so concurrent ``write()`` callers share commits (group commit).

With ``writer="process"`` the sealing and inserts run in a child interpreter instead
(``python -m govbus.audit.process``), so they no longer share the event loop's GIL: a feeder thread
takes the same batches off the deque and pickles them, as plain tuples, down a pipe; a reader
thread resolves ``write()``/``flush()`` waiters from the child's per-batch acknowledgements. Both
modes drive one synchronous core, :class:`ChainWriter` (open, migrate, resume, commit with
retries, re-chaining and coercion).

The schema and reading live in :mod:`govbus.audit.database`; the synchronous core both
writer modes drive in :mod:`govbus.audit.writer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from multiprocessing.connection import Connection as _PipeConnection
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from govbus.audit.base import AuditEvent, AuditRecord, VerifyReport
from govbus.audit.chain import (
    default_node_name,
    row_to_record,
)
from govbus.audit.database import (
    DEFAULT_URL,
    PageKey,
    db_error,
    describe_url,
    fetch_page,
    normalize_url,
    reading_engine,
    require_tables,
    verify_engine,
)
from govbus.audit.writer import (
    ChainWriter,
)
from govbus.errors import AuditError, AuditUnavailableError, ChainBrokenError

__all__ = ["SqlAuditStore"]

_log = logging.getLogger("govbus.audit")

_STARTUP_ERRORS: Final[dict[str, type[AuditError]]] = {
    "AuditError": AuditError,
    "AuditUnavailableError": AuditUnavailableError,
    "ChainBrokenError": ChainBrokenError,
}


class _ChildProcess:
    """The writer child as the store sees it (``subprocess.Popen`` with the small part of the
    ``multiprocessing.Process`` interface the store uses)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.terminate()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def close(self) -> None:
        self._popen.wait()


def _hang_up(process: _ChildProcess, conn: Any) -> None:
    """Ask the child to close, as ``close()`` does: it commits the batches it has and exits.

    (Closing our socket is not enough: the reader thread, blocked reading it, keeps the socket
    open, so the child would never see EOF.)
    """
    with contextlib.suppress(OSError):
        conn.send_bytes(b"C")  # govbus.audit.process.CLOSE
    _reap(process, 5.0)
    with contextlib.suppress(OSError):
        conn.close()


def _reap(process: Any, timeout: float) -> bool:
    """Join ``process`` within ``timeout``, else terminate (then kill) it; True if it exited."""
    process.join(timeout)
    if process.exitcode is not None:
        return True
    process.terminate()
    process.join(2.0)
    if process.exitcode is None:
        process.kill()
        process.join()
    return False


# --------------------------------------------------------------------------------------------
# The store


class _Waiter:
    """A queue entry that resolves ``future`` once every event queued before it is committed."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop = loop
        self.future = future


def _resolve(futures: Sequence[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


#: Seconds ``start()`` waits for the writer process to open the database and report.
_PROCESS_START_TIMEOUT: Final = 60.0


class SqlAuditStore:
    """Append-only, hash-chained audit store on SQLAlchemy 2 (SQLite or PostgreSQL).

    Example:
        >>> import asyncio, tempfile
        >>> from datetime import UTC, datetime
        >>> async def demo(path: str) -> int:
        ...     store = SqlAuditStore(path, node="doc")
        ...     await store.start()
        ...     store.submit(AuditEvent(kind="admin", ts=datetime.now(UTC), outcome="start"))
        ...     await store.write(AuditEvent(kind="admin", ts=datetime.now(UTC), outcome="ok"))
        ...     report = await store.verify()
        ...     await store.close()
        ...     return report.records
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asyncio.run(demo(f"{tmp}/audit.db"))
        2

    Args:
        url: a SQLAlchemy URL (``sqlite:///relative.db``, ``sqlite:////abs.db``,
            ``postgresql://user@host/db``) or a bare SQLite file path.
        node: the chain this process appends to. Defaults to ``"<hostname>-<pid>"``: one chain
            per writer process, so two processes never race for the next sequence number of one
            chain. Give a stable name to continue the same chain across restarts; at most one
            live process should use a given name (a second one is detected and re-chained after,
            at the cost of retries).
        batch_size: most events per insert and commit.
        flush_interval: how long (seconds) the writer lets ``submit``-ed events accumulate
            before committing a partial batch. ``write`` and ``flush`` do not wait for it.
        max_queue: most events waiting for the writer; ``submit`` then raises
            :class:`AuditUnavailableError` (fail closed; nothing is dropped silently).
        write_timeout: how long (seconds) ``write`` and ``flush`` wait while the writer makes no
            progress (database down) before raising :class:`AuditUnavailableError`.
        page_size: records per query when reading.
        writer: ``"thread"`` seals and inserts in a thread of this process; ``"process"`` in a
            child interpreter (``python -m govbus.audit.process``), so sealing and inserts do
            not hold this process's GIL. This process then only queues events and pickles plain
            tuples to the child in a feeder thread. The child is started with ``subprocess``,
            not ``multiprocessing``, so scripts need no ``if __name__ == "__main__"`` guard. If
            the child dies, waiters and later ``submit`` calls get
            :class:`AuditUnavailableError` (fail closed). The spool seam
            (:meth:`_on_persistent_failure`) is only available with ``"thread"``.
        spool: a local file for sealed records while the database is down: once a batch has
            failed for half of ``write_timeout`` it is appended there (fsynced) and counts as
            written; later batches follow it until the spooled records are inserted, in order,
            when the database is back (checked before each batch). The chain stays intact and
            ``verify`` passes afterwards. Without a spool, writes fail closed.
    """

    def __init__(
        self,
        url: str | URL = DEFAULT_URL,
        *,
        node: str | None = None,
        batch_size: int = 1000,
        flush_interval: float = 0.05,
        max_queue: int = 100_000,
        write_timeout: float = 5.0,
        page_size: int = 1000,
        writer: Literal["thread", "process"] = "thread",
        spool: str | Path | None = None,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or page_size < 1:
            raise ValueError("batch_size, max_queue and page_size must be at least 1")
        if writer not in ("thread", "process"):
            raise ValueError(f"writer must be 'thread' or 'process', not {writer!r}")
        if writer == "process" and (
            type(self)._on_persistent_failure is not SqlAuditStore._on_persistent_failure
        ):
            # The seam runs where the batch is, i.e. in the child, which knows nothing of
            # this subclass: refuse rather than silently never spool.
            raise ValueError("a spool (_on_persistent_failure) needs writer='thread'")
        self._url = normalize_url(url)
        self._where = describe_url(self._url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        # Computed here, in the parent, so the default chain is named after this process.
        self._node = node if node is not None else default_node_name()
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._write_timeout = write_timeout
        self._page_size = page_size
        self._mode = writer
        self._spool = Path(spool).absolute() if spool is not None else None

        # Shared with the writer (or feeder) thread. deque.append/popleft are atomic, so submit
        # takes no lock; the writer is woken through ``_wakeup`` only when it must not linger.
        self._queue: deque[AuditEvent | _Waiter] = deque()
        self._wakeup = threading.Event()
        self._abort = threading.Event()  # give up retrying (close while the database is down)
        self._stopping = False
        # Set when a caller waits for a commit (write, flush): send partial batches at once.
        self._urgent = False
        self._lingering_since: float | None = None
        self._accepting = False
        self._state = "new"  # new -> started -> closed
        self._lifecycle = asyncio.Lock()  # start and close run one at a time
        self._engine: Engine | None = None
        self._reader: Engine | None = None
        self._thread: threading.Thread | None = None
        self._progress = 0  # batches committed; tells a slow database from a stuck one
        self._waiting: set[asyncio.Future[None]] = set()  # futures of write() and flush()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None
        self._watch_seen = 0
        self._last_error: str | None = None  # short text of the latest write failure
        self._uncommitted = 0  # events abandoned by an aborted close (or a dead child)

        # Thread mode: the core, owned by the writer thread after start().
        self._chain: ChainWriter | None = None
        # Process mode: the child, its pipe, and the batches sent but not yet acknowledged
        # (id -> [event count, waiters]), shared by the feeder and reader threads.
        self._process: _ChildProcess | None = None
        self._conn: Any = None  # multiprocessing.connection.Connection over a socket
        self._child_abort: Any = None  # Connection: a byte on it stops the child retrying
        self._reader_thread: threading.Thread | None = None
        self._finalizer: weakref.finalize[..., SqlAuditStore] | None = None
        self._pending: dict[int, list[Any]] = {}
        self._pending_lock = threading.Lock()
        self._process_lock = threading.Lock()  # one thread at a time reaps the child
        self._next_batch = 0
        self._dead: str | None = None  # why the writer process is gone, once it is

    # -- properties -----------------------------------------------------------------------

    @property
    def node(self) -> str:
        """The name of the chain this store appends to."""
        return self._node

    @property
    def url(self) -> URL:
        """The normalized database URL."""
        return self._url

    @property
    def writer(self) -> Literal["thread", "process"]:
        """Where sealing and inserts run: ``"thread"`` or ``"process"``."""
        return "process" if self._mode == "process" else "thread"

    @property
    def writer_pid(self) -> int | None:
        """The writer process's pid while it is started (process mode); None otherwise."""
        process = self._process
        return None if process is None else int(process.pid)

    @property
    def batches(self) -> int:
        """Batches committed since :meth:`start` (each is one transaction)."""
        return self._progress

    @property
    def pending(self) -> int:
        """Events (and waiters) queued for the writer and not yet taken into a batch."""
        return len(self._queue)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the database, create or migrate the schema, resume this node's chain.

        Idempotent. Raises :class:`AuditError` naming the path when a SQLite file cannot be
        created, :class:`AuditUnavailableError` when a database server cannot be reached, and
        :class:`ChainBrokenError` when this node's chain has records but its head row is gone
        (it will not extend a chain whose tail may have been cut; run ``govbus audit verify``).
        In process mode the child does all of this and the same errors are raised here.
        """
        async with self._lifecycle:
            if self._state == "started":
                return
            if self._state == "closed":
                raise AuditError("audit store is closed; create a new one")
            if self._mode == "process":
                await asyncio.to_thread(self._spawn)
                target = self._feed_forever
            else:
                chain = ChainWriter(
                    self._url,
                    self._node,
                    write_timeout=self._write_timeout,
                    abort=self._abort,
                    on_persistent_failure=self._on_persistent_failure,
                    on_error=self._note_error,
                    spool=self._spool,
                )
                self._engine = await asyncio.to_thread(chain.open)
                self._chain = chain
                target = self._loop_forever
            # A daemon thread, so a process that forgets close() can still exit; close() (or
            # App.close()) is what guarantees the queue reaches the database.
            self._thread = threading.Thread(
                target=self._run,
                args=(target,),
                name=f"govbus-audit-writer[{self._node}]",
                daemon=True,
            )
            self._thread.start()
            if self._reader_thread is not None:
                self._reader_thread.start()
            self._accepting = True
            self._state = "started"

    def _note_error(self, error: str) -> None:
        self._last_error = error

    async def close(self) -> None:
        """Flush, stop the writer and release the database. Idempotent.

        Raises:
            AuditUnavailableError: the database stayed down (or the writer process died), so
                queued events could not be committed; the message says how many.
        """
        async with self._lifecycle:
            if self._state == "closed":
                return
            self._accepting = False
            failure: AuditUnavailableError | None = None
            if self._state == "started":
                try:
                    await self.flush()
                except AuditUnavailableError as exc:
                    failure = exc
                    self._abort.set()
                    if self._child_abort is not None:
                        with contextlib.suppress(OSError):  # a dead child needs no telling
                            self._child_abort.send_bytes(b"A")
                self._stopping = True
                self._wakeup.set()
                if self._mode == "process":
                    await asyncio.to_thread(self._stop_process)
                elif self._thread is not None:
                    await asyncio.to_thread(self._thread.join)
            self._state = "closed"
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            if self._chain is not None:
                self._chain.dispose()
            for engine in (self._engine, self._reader):
                if engine is not None:
                    engine.dispose()
            self._engine = self._reader = None
            if failure is None and self._uncommitted:
                failure = AuditUnavailableError(self._dead or "the writer process was stopped")
            if failure is not None:
                raise AuditUnavailableError(
                    f"audit store closed with {self._uncommitted} events not committed to "
                    f"{self._where}: {failure.message}"
                ) from failure

    # -- writing (event loop side) --------------------------------------------------------

    def submit(self, event: AuditEvent) -> None:
        """Queue ``event`` for the writer and return at once (``batch`` durability).

        O(1) and lock-free: no hashing or serialization happens on the caller's thread.

        Raises:
            AuditError: the store is not started or already closed.
            AuditUnavailableError: ``max_queue`` events are already waiting (the database is
                down or too slow), or the writer process died; the event was not queued.
        """
        if not self._accepting:
            if self._dead is not None:
                raise AuditUnavailableError(self._dead)
            raise AuditError(f"cannot write audit event: the audit store is {self._state_text()}")
        queue = self._queue
        size = len(queue)
        if size >= self._max_queue:
            raise AuditUnavailableError(
                f"audit queue full ({self._max_queue} events waiting for {self._where}); "
                "the database is down or not keeping up"
            )
        queue.append(event)
        if size + 1 >= self._batch_size and not self._wakeup.is_set():
            self._wakeup.set()  # a full batch is ready: don't let the writer linger

    async def write(self, event: AuditEvent) -> None:
        """Queue ``event`` and wait until it is committed (``sync`` durability).

        Concurrent callers share commits. If the database makes no progress for
        ``write_timeout`` seconds this raises :class:`AuditUnavailableError`; the event stays
        queued and is still written when the database comes back.
        """
        self.submit(event)
        await self._wait_committed()

    async def flush(self) -> None:
        """Wait until every event submitted so far is committed.

        Raises:
            AuditUnavailableError: the database made no progress for ``write_timeout`` seconds,
                or the writer process died.
        """
        if self._dead is not None:
            raise AuditUnavailableError(self._dead)
        if self._state != "started" or self._abort.is_set():
            return
        await self._wait_committed()

    async def _wait_committed(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiting = self._waiting
        waiting.add(future)
        future.add_done_callback(waiting.discard)
        self._queue.append(_Waiter(loop, future))
        self._urgent = True
        if not self._wakeup.is_set():
            self._wakeup.set()
        if self._watchdog is None or self._watchdog_loop is not loop:
            self._arm_watchdog(loop)
        await future

    # One timer per store, not one per waiter: with a thousand concurrent write() callers a
    # per-call asyncio.wait(timeout=...) costs more than the commit it waits for.
    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog_loop = loop
        self._watch_seen = self._progress
        self._watchdog = loop.call_later(self._write_timeout, self._check_progress)

    def _check_progress(self) -> None:
        """Fail every waiter if the writer committed nothing during the last ``write_timeout``."""
        self._watchdog = None
        if not self._waiting:
            return
        thread = self._thread
        alive = thread is not None and thread.is_alive() and self._dead is None
        if self._progress != self._watch_seen and alive:
            self._arm_watchdog(asyncio.get_running_loop())  # slow but moving: keep waiting
            return
        error = self._last_error
        detail = f": {error}" if error is not None else ""
        message = (
            f"audit database at {self._where} committed nothing for "
            f"{self._write_timeout:g}s{detail}; the events stay queued"
        )
        loop = asyncio.get_running_loop()
        for future in list(self._waiting):
            # A store is normally used from one loop; futures of another loop are not ours to
            # touch from here.
            if future.get_loop() is loop and not future.done():
                future.set_exception(AuditUnavailableError(message))

    def _state_text(self) -> str:
        if self._state == "new":
            return "not started (await store.start() first)"
        return "closed" if self._state == "closed" else "closing"

    # -- the writer thread (thread mode) or feeder thread (process mode) -----------------

    def _run(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:  # a bug; waiters see a dead writer and fail, callers learn of it
            _log.exception("audit writer for %s crashed", self._where)
            raise

    def _loop_forever(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        while True:
            # Linger up to flush_interval so submitted events form big batches; submit (full
            # batch), write, flush and close cut the wait short.
            wakeup.wait(self._flush_interval)
            wakeup.clear()
            while self._batch_due() and not self._abort.is_set():
                self._write_batch()
            if self._abort.is_set():
                self._abandon()
                return
            if self._stopping and not queue:
                return

    def _batch_due(self) -> bool:
        """Whether to take a batch now. Under load only full batches go: sending whatever
        trickled in since the last batch makes many tiny batches, and each costs the event
        loop a GIL handoff (and, in process mode, a pipe round trip). A partial batch goes
        when someone waits for a commit, when the store is stopping, or once it has lingered
        for ``flush_interval``."""
        queue = self._queue
        if not queue:
            self._urgent = False
            self._lingering_since = None
            return False
        if len(queue) >= self._batch_size or self._urgent or self._stopping:
            return True
        now = time.monotonic()
        if self._lingering_since is None:
            self._lingering_since = now
            return False
        if now - self._lingering_since >= self._flush_interval:
            self._lingering_since = None
            return True
        return False

    def _take_batch(self) -> tuple[list[AuditEvent], list[_Waiter]]:
        queue, limit = self._queue, self._batch_size
        events: list[AuditEvent] = []
        waiters: list[_Waiter] = []
        pop, add_event, add_waiter = queue.popleft, events.append, waiters.append
        try:
            while len(events) < limit:
                item = pop()
                if type(item) is _Waiter:
                    add_waiter(item)
                else:
                    add_event(item)  # type: ignore[arg-type]
        except IndexError:
            pass
        return events, waiters

    def _write_batch(self) -> None:
        events, waiters = self._take_batch()
        if events:
            assert self._chain is not None
            if not self._chain.commit(events):
                self._uncommitted += len(events)
                self._finish_waiters(waiters, self._abandon_error())
                return
            self._last_error = None
            self._progress += 1
        self._finish_waiters(waiters, None)

    def _on_persistent_failure(self, rows: list[dict[str, Any]], error: BaseException) -> bool:
        """Seam for the local spool: called after every failed attempt once a batch has failed
        for ``write_timeout`` seconds (thread mode only).

        ``rows`` are sealed records (chained after the last committed one) in order. Return True
        if they were persisted elsewhere (the writer then counts the batch as committed and
        moves on); False keeps retrying the database. A spool that takes rows over must replay
        them, in order, before the database sees later batches. Without a spool, callers of
        ``write``/``flush`` get :class:`AuditUnavailableError` and ``submit`` fails once
        ``max_queue`` is reached: fail closed.
        """
        return False

    def _abandon(self) -> None:
        # Only on close() with the database down (or once the writer process died): count what
        # cannot be written and release anyone still waiting, so the thread can exit.
        waiters: list[_Waiter] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Waiter):
                waiters.append(item)
            else:
                self._uncommitted += 1
        if self._uncommitted and self._dead is None:
            _log.error(
                "audit store closed with %d events not committed to %s: %s",
                self._uncommitted,
                self._where,
                self._last_error,
            )
        self._finish_waiters(waiters, self._abandon_error())

    def _abandon_error(self) -> AuditUnavailableError:
        if self._dead is not None:
            return AuditUnavailableError(self._dead)
        return AuditUnavailableError(
            f"audit store closed before these events reached {self._where}: {self._last_error}"
        )

    @staticmethod
    def _finish_waiters(waiters: list[_Waiter], error: BaseException | None) -> None:
        if not waiters:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for waiter in waiters:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
        for loop, futures in by_loop.items():
            # One thread-safe call per loop and batch, not one per waiter: each call writes to
            # the loop's self-pipe.
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                loop.call_soon_threadsafe(_resolve, futures, error)

    # -- the writer process (process mode) ------------------------------------------------

    def _spawn(self) -> None:
        """Start the child and wait (bounded) until it has opened the database, or raise its
        startup error.

        The child is a fresh interpreter running ``python -m govbus.audit.process``, not a
        ``multiprocessing`` spawn: spawn re-imports the user's ``__main__``, so every script
        using the store would need an ``if __name__ == "__main__"`` guard.
        """
        parent_sock, child_sock = socket.socketpair()
        abort_read, abort_write = os.pipe()
        env = dict(os.environ)
        # The child must import this very govbus, wherever the parent found it.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p
        )
        command = [
            sys.executable,
            "-m",
            "govbus.audit.process",
            str(child_sock.fileno()),
            str(abort_read),
            self._node,
        ]
        try:
            popen = subprocess.Popen(
                command,
                pass_fds=(child_sock.fileno(), abort_read),
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            parent_sock.close()
            child_sock.close()
            os.close(abort_read)
            os.close(abort_write)
            raise
        proc = _ChildProcess(popen)
        child_sock.close()  # so the child's exit is an EOF on our end
        os.close(abort_read)
        parent_conn = _PipeConnection(parent_sock.detach())
        abort_writer = _PipeConnection(abort_write, readable=False)
        # Configuration travels over the socket, not argv: a database URL may hold a password.
        spool = str(self._spool) if self._spool is not None else None
        parent_conn.send((self._url, self._node, self._write_timeout, spool))
        try:
            reply = self._await_ready(parent_conn, proc)
        except BaseException:
            parent_conn.close()
            abort_writer.close()
            _reap(proc, 5.0)
            raise
        _log.debug("audit writer process %d ready for chain %r at %s", proc.pid, *reply[1:])
        self._process, self._conn, self._child_abort = proc, parent_conn, abort_writer
        # If close() is forgotten: at exit (or when the store is collected) hang up, so the
        # child commits what it has and exits on EOF, then reap it (bounded).
        self._finalizer = weakref.finalize(self, _hang_up, proc, parent_conn)
        self._reader_thread = threading.Thread(
            target=self._read_forever,
            name=f"govbus-audit-reader[{self._node}]",
            daemon=True,
        )

    def _await_ready(self, conn: Any, proc: Any) -> tuple[Any, ...]:
        deadline = time.monotonic() + _PROCESS_START_TIMEOUT
        while not conn.poll(0.05):
            if proc.exitcode is not None and not conn.poll():
                raise AuditError(
                    f"audit writer process for {self._where} exited with code {proc.exitcode} "
                    "before it was ready"
                )
            if time.monotonic() > deadline:
                raise AuditUnavailableError(
                    f"audit writer process for {self._where} was not ready within "
                    f"{_PROCESS_START_TIMEOUT:g}s"
                )
        try:
            reply: tuple[Any, ...] = conn.recv()
        except (EOFError, OSError) as exc:
            raise AuditError(
                f"audit writer process for {self._where} exited before it was ready"
            ) from exc
        if reply[0] == "error":
            error_type = _STARTUP_ERRORS.get(reply[1], AuditError)
            raise error_type(reply[2])
        return reply

    def _feed_forever(self) -> None:
        queue, wakeup = self._queue, self._wakeup
        while True:
            wakeup.wait(self._flush_interval)
            wakeup.clear()
            while self._batch_due() and not self._abort.is_set() and self._dead is None:
                self._send_batch()
            if self._abort.is_set() or self._dead is not None:
                self._abandon()
                return
            if self._stopping and not queue:
                return

    def _send_batch(self) -> None:
        from govbus.audit.process import encode_batch

        events, waiters = self._take_batch()
        with self._pending_lock:
            if self._dead is not None:
                self._uncommitted += len(events)
                self._finish_waiters(waiters, AuditUnavailableError(self._dead))
                return
            if not events:
                if self._pending:
                    # Waiters only: they are done when the last batch sent before them is.
                    self._pending[next(reversed(self._pending))][1].extend(waiters)
                else:
                    self._finish_waiters(waiters, None)
                return
            self._next_batch += 1
            batch_id = self._next_batch
            self._pending[batch_id] = [len(events), waiters]
        payload = encode_batch(batch_id, events)
        # A dead child shows up as EOF in the reader thread, which fails this batch's waiters.
        with contextlib.suppress(OSError):
            self._conn.send_bytes(payload)

    def _read_forever(self) -> None:
        conn = self._conn
        try:
            while True:
                reply = conn.recv()
                kind = reply[0]
                if kind == "committed":
                    with self._pending_lock:
                        _, waiters = self._pending.pop(reply[1])
                    self._last_error = None
                    self._progress += 1
                    self._finish_waiters(waiters, None)
                elif kind == "failed":
                    with self._pending_lock:
                        count, waiters = self._pending.pop(reply[1])
                        self._uncommitted += count
                    self._last_error = reply[2]
                    self._finish_waiters(waiters, self._abandon_error())
                elif kind == "error":
                    self._last_error = reply[1]
                elif kind == "log":
                    # The child's warnings (retries, re-chaining) belong in our logs.
                    logging.getLogger(reply[1]).log(reply[2], "%s", reply[3])
                elif kind == "closed":
                    return
        except (EOFError, OSError):
            pass
        self._on_child_exit()

    def _on_child_exit(self) -> None:
        """The child is gone without being asked to close: fail closed."""
        with self._process_lock:
            process = self._process
            if process is None:  # close() already reaped it: nothing is waiting any more
                return
            process.join(1.0)
            code = process.exitcode
        queued = sum(1 for item in list(self._queue) if type(item) is not _Waiter)
        with self._pending_lock:
            lost = list(self._pending.values())
            self._pending.clear()
            in_flight = sum(count for count, _ in lost)
            self._uncommitted += in_flight
            self._dead = (
                f"audit writer process exited with code {code}; "
                f"{in_flight + queued} events not committed"
            )
        self._accepting = False
        _log.error("%s (chain %r at %s)", self._dead, self._node, self._where)
        error = AuditUnavailableError(self._dead)
        self._finish_waiters([w for _, waiters in lost for w in waiters], error)
        self._wakeup.set()  # the feeder fails what is still queued, then exits

    def _stop_process(self) -> None:
        """Stop the feeder, ask the child to finish and exit, and reap it (bounded)."""
        process = self._process
        assert process is not None, "_stop_process runs only after a started child"
        bound = self._write_timeout + 5.0
        if self._thread is not None:
            self._thread.join(bound)
        if self._dead is None:
            with contextlib.suppress(OSError):
                self._conn.send_bytes(b"C")  # govbus.audit.process.CLOSE
        with self._process_lock:
            if not _reap(process, bound):
                _log.error("audit writer process for %s did not exit; killed it", self._where)
        for thread in (self._reader_thread, self._thread):
            if thread is not None:
                thread.join(5.0)
        with self._pending_lock:
            # Killed with batches in flight: the reader counted them, unless it never ran.
            self._uncommitted += sum(count for count, _ in self._pending.values())
            self._pending.clear()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._conn.close()
        self._child_abort.close()
        process.close()
        self._process = None

    # -- reading --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[Engine]:
        """Yield the engine to read with: the writer's, else a reader made on first use.

        After :meth:`close` a temporary engine, so records stay readable (as in memory).
        """
        if self._engine is not None:
            yield self._engine
        elif self._state != "closed":
            if self._reader is None:
                self._reader = await asyncio.to_thread(reading_engine, self._url)
            yield self._reader
        else:
            engine = await asyncio.to_thread(reading_engine, self._url)
            try:
                yield engine
            finally:
                engine.dispose()

    async def records(self, *, node: str | None = None) -> AsyncIterator[AuditRecord]:
        """Stored records ordered by node then sequence, read page by page in a thread.

        Works without :meth:`start` (read-only use) and after :meth:`close`.

        Args:
            node: only this chain's records.
        """
        after: PageKey | None = None
        async with self._reading() as engine:
            try:
                await asyncio.to_thread(require_tables, engine, self._where)
                while True:
                    rows = await asyncio.to_thread(fetch_page, engine, node, after, self._page_size)
                    for row in rows:
                        yield row_to_record(row)
                    if len(rows) < self._page_size:
                        return
                    last = rows[-1]
                    after = (last["node"], int(last["seq"]), int(last["id"]))
            except SQLAlchemyError as exc:
                raise db_error("read", self._where, exc, self._sqlite) from exc

    async def verify(self, *, node: str | None = None) -> VerifyReport:
        """Recompute every chain (or one) and compare with the heads; constant memory.

        Works without :meth:`start` and after :meth:`close`. Records still queued are not
        included: ``flush`` first to verify everything written so far.

        Args:
            node: verify only this chain.
        """
        async with self._reading() as engine:
            try:
                await asyncio.to_thread(require_tables, engine, self._where)
                return await asyncio.to_thread(verify_engine, engine, node, self._page_size)
            except SQLAlchemyError as exc:
                raise db_error("read", self._where, exc, self._sqlite) from exc
