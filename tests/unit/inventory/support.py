"""A small governed app for the inventory tests, and a server running it on a free port."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import govbus
from govbus import Actor, Context, Message
from govbus.inventory import Activity, Token, Tokens
from govbus.policy import parse_policy

T = TypeVar("T")

POLICY = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: inventory-test, version: "3", owner: Chief Risk Officer}
spec:
  mode: enforce
  roles: [advisor, customer]
  checks:
    - id: advisors-only
      use: rbac
      rules:
        - types: ["advice.get"]
          roles: [advisor]
      default: allow
"""

READ = "read-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = Tokens([Token("risk-office", "read", READ), Token("ops-oncall", "admin", ADMIN)])

ADVISOR = Actor(subject="asha", roles=("advisor",))
CUSTOMER = Actor(subject="carl", roles=("customer",))


def approvals_file(directory: Path, *, approve: bool = True) -> Path:
    """An approvals file approving the test policy (or another policy only)."""
    sha = parse_policy(POLICY).sha256 if approve else "0" * 64
    path = directory / "approvals.yaml"
    path.write_text(
        "approvals:\n"
        f"  - {{name: inventory-test, version: '3', sha256: {sha}, approver: Chief Risk Officer,"
        " date: 2026-11-21, reference: RISK-7}\n"
    )
    return path


def make_app(
    directory: Path, *, approve: bool = True, audit: Any = "memory://", **kwargs: Any
) -> govbus.App:
    """advisor (high risk, a model, falls back to snapshot), snapshot, and flaky (raises when
    asked to, no fallback)."""
    app = govbus.App(
        "inventory-test",
        policy=parse_policy(POLICY),
        audit=audit,
        approvals=approvals_file(directory, approve=approve),
        **kwargs,
    )

    @app.agent(
        "advisor",
        handles="advice.get",
        description="Words advice with a model.",
        owner="Advisory team",
        risk="high",
        clearance="pii",
        region="eu-west",
        model="openai/gpt-4o",
        fallback="snapshot",
        timeout=2.0,
    )
    async def advisor(msg: Message, ctx: Context) -> Message:
        if msg.payload.get("fail"):
            raise RuntimeError("market data unavailable")
        return ctx.reply("advice.answer", {"by": "advisor"})

    @app.agent("snapshot", handles="advice.snapshot", owner="Advisory team")
    async def snapshot(msg: Message, ctx: Context) -> Message:
        return ctx.reply("advice.answer", {"by": "snapshot"})

    @app.agent("flaky", handles="flaky.run", owner="Ops", risk="medium")
    async def flaky(msg: Message, ctx: Context) -> Message:
        raise RuntimeError("always fails")

    return app


def advice(*, actor: Actor = ADVISOR, **payload: Any) -> Message:
    return Message(type="advice.get", sender="web", actor=actor, payload=payload)


class Served:
    """``govbus.inventory.serve`` in a thread of its own, on a free loopback port: tests talk
    to it over real HTTP and run coroutines in its event loop with :meth:`run`."""

    def __init__(
        self,
        app: govbus.App,
        *,
        tokens: Tokens | None = TOKENS,
        insecure: bool = False,
        activity: Activity | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.insecure = insecure
        self.activity = activity
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="served-app", daemon=True)

    def _main(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        from govbus.inventory.server import serve

        async def main() -> None:
            self._stop = asyncio.Event()

            def ready(url: str) -> None:
                self.url = url
                self._ready.set()

            await serve(self.app, tokens=self.tokens, insecure=self.insecure, sock=sock,
                        stop=self._stop, on_ready=ready, activity=self.activity,
                        drain_timeout=5.0)  # fmt: skip

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()

    def __enter__(self) -> Served:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or not self.url:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self

    def run(self, make: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
        """Run ``make()`` in the server's event loop and return its result."""

        async def wrapped() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn()`` in the server's event loop thread (the app is not thread-safe)."""

        async def wrapped() -> T:
            return fn()

        return self.run(wrapped)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._thread.is_alive():
            raise RuntimeError("the server did not stop within 30 s")
        if self._error is not None and exc is None:
            raise self._error

    def headers(self, token: str = READ) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}
