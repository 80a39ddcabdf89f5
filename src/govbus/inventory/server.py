"""Serve an app's agents and its inventory endpoint together, in one event loop.

uvicorn runs inside the app's loop (``uvicorn.Server(config).serve()``), so the endpoint reads
the live orchestrator without locks or threads. :func:`serve` owns the app's lifecycle: it
starts the app, serves until ``stop`` is set, then stops taking HTTP requests, drains the
app's in-flight work and flushes its audit log (``App.close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import uvicorn

from govbus.errors import ConfigError
from govbus.inventory.app import create_asgi_app
from govbus.inventory.auth import Tokens
from govbus.inventory.model import Activity
from govbus.orchestrator import App


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller decides when to stop (uvicorn's
    handlers re-raise the signal after serving, which would end the process before the app
    drains and the audit is flushed)."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None] | None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self._on_ready is not None and self.started:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self._on_ready(f"http://{shown}:{port}")


async def serve(
    app: App,
    *,
    tokens: Tokens | None = None,
    insecure: bool = False,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    activity: Activity | None = None,
    drain_timeout: float = 30.0,
) -> None:
    """Start ``app``, serve its inventory endpoint until ``stop`` is set, then drain and close.

    Args:
        app: the app (not started yet, or running; it is closed on return).
        tokens: bearer tokens; with none, ``insecure`` must be True.
        insecure: serve without authentication.
        host: where to listen (default 127.0.0.1: this machine only).
        port: the port (0: any free one; ``on_ready`` receives the URL).
        sock: a bound socket to serve on instead of ``host``/``port`` (tests).
        stop: set it to stop (e.g. from a SIGTERM handler); None serves until cancelled.
        on_ready: called with the base URL once the server accepts connections.
        activity: the app's :class:`Activity` (default: a new one, sampled every
            ``resolution`` seconds while serving).
        drain_timeout: seconds in-flight work may take to finish on stop.

    Raises:
        ConfigError: no token and not ``insecure``, or the address cannot be bound.
    """
    activity = activity or Activity(app)
    asgi = create_asgi_app(app, tokens=tokens, insecure=insecure, activity=activity)
    config = uvicorn.Config(
        asgi,
        host=host,
        port=port,
        lifespan="off",
        log_config=None,  # leave the process's logging as the caller configured it
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = _Server(config, on_ready)
    await app.start()
    background: list[asyncio.Task[None]] = [asyncio.create_task(_sample(activity))]
    if stop is not None:
        background.append(asyncio.create_task(_stop_when(stop, server)))
    try:
        activity.observe()
        try:
            await server.serve(sockets=[sock] if sock is not None else None)
        except SystemExit:  # uvicorn's way of saying it could not bind
            raise ConfigError(
                f"cannot listen on {host}:{port} (in use, or not an address of this machine)"
            ) from None
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await app.close(drain_timeout=drain_timeout)


async def _sample(activity: Activity) -> None:
    while True:
        await asyncio.sleep(activity.resolution)
        activity.observe()


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True
