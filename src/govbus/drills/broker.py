"""A private ``nats-server`` with JetStream: its own port, its own store directory.

Drills on NATS (``bus: nats``) and the NATS tests never touch a shared server (for instance one
on the default port 4222): each :class:`NatsServer` listens on a free port of 127.0.0.1 and
keeps its JetStream data in a directory of its own, and it is stopped by its process id only.

Usage::

    with NatsServer() as server:
        bus = NatsBus(server.url)
        ...
        server.restart(down_for=1.0)   # stop, stay down, start on the same port and store

The methods block (they wait for the process and the port); from async code, call them with
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

#: Where the binary is looked for when it is not on ``PATH`` (the Debian package puts it here).
FALLBACK_PATHS = ("/usr/sbin/nats-server", "/usr/local/bin/nats-server")

#: Why :class:`NatsServer` cannot start when the binary is missing.
NOT_INSTALLED = (
    "nats-server is not installed (not on PATH, not in "
    + ", ".join(str(Path(p).parent) for p in FALLBACK_PATHS)
    + ")"
)


def find_nats_server() -> str | None:
    """The path of the ``nats-server`` binary, or None when it is not installed."""
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in FALLBACK_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class NatsServer:
    """One ``nats-server -js`` process on 127.0.0.1, started and stopped by this object.

    Args:
        store_dir: the directory for the JetStream store (``<store_dir>/jetstream``) and the
            log (default: a new temporary directory, removed when the server is closed).
        binary: the ``nats-server`` executable (default: :func:`find_nats_server`).
        port: the client port (default: a free one, kept across :meth:`restart`).
        start_timeout: seconds to wait for the port to accept connections.

    Raises:
        FileNotFoundError: no ``binary`` given and ``nats-server`` is not installed.

    Attributes:
        url: ``nats://127.0.0.1:<port>``.
        log_path: the server's log file (beside the store directory), for debugging.
        starts: how many times the process was started (a restart counts one more).
    """

    def __init__(
        self,
        store_dir: Path | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        found = binary or find_nats_server()
        if found is None:
            raise FileNotFoundError(NOT_INSTALLED)
        self.binary = found
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.starts = 0
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="govbus-nats-")
            store_dir = Path(self._own_dir.name)
        self.store_dir = store_dir / "jetstream"
        self.log_path = store_dir / "nats-server.log"
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        # start/stop/kill from different threads (a restart in a worker thread, a close from
        # the caller's) take turns, so a stop never misses a process that is being started.
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start the server and wait until its port accepts connections.

        Raises:
            RuntimeError: the process exited at start (the message holds its log's last
                lines), or the port did not accept connections within ``start_timeout``.
        """
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.store_dir),
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self.starts += 1
        deadline = time.monotonic() + self.start_timeout
        while not _accepts(self.port):
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(
                    f"nats-server exited with code {code} at start; see {self.log_path}:\n"
                    + self._log_tail()
                )
            if time.monotonic() > deadline:
                self._stop(timeout=5.0)
                raise RuntimeError(
                    f"nats-server did not accept connections on port {self.port} within "
                    f"{self.start_timeout}s; see {self.log_path}"
                )
            time.sleep(0.02)

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop the server by its process id: SIGTERM (graceful), then SIGKILL after
        ``timeout`` seconds."""
        with self._lock:
            self._stop(timeout=timeout)

    def _stop(self, *, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout)
        # Wait until the port is free again, so a restart can bind it.
        deadline = time.monotonic() + timeout
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL): no graceful shutdown, as in a crash. Returns
        once the process is gone and its port is free."""
        with self._lock:
            process = self._process
            if process is None:
                return
            self._process = None
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(5.0)
            deadline = time.monotonic() + 5.0
            while _accepts(self.port) and time.monotonic() < deadline:
                time.sleep(0.02)

    def restart(self, *, down_for: float = 0.0) -> None:
        """Stop the server, stay down ``down_for`` seconds, and start it again on the same port
        with the same store directory (JetStream data survives)."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory (if it made one)."""
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["FALLBACK_PATHS", "NOT_INSTALLED", "NatsServer", "find_nats_server", "free_port"]
