"""The inventory endpoint as an ASGI app (Starlette): ``create_asgi_app(app, tokens=...)``.

=====================================  =======  ==============================================
route                                  scope    what
=====================================  =======  ==============================================
``GET /v1/inventory``                  read     every agent: card, status, counters; policy
``GET /v1/inventory/{name}``           read     one agent
``GET /v1/policy``                     read     the active policy, hash, approval, summary
``POST /v1/agents/{name}/pause``       admin    the kill switch (``App.pause``), audited
``POST /v1/agents/{name}/resume``      admin    ``App.resume``, audited
``GET /metrics``                       read     Prometheus text format
``GET /healthz``, ``GET /readyz``      none     liveness; readiness (orchestrator, bus, audit)
``GET /openapi.json``                  none     the OpenAPI 3.1 document
``GET /``                              none     the dashboard page (its data calls need a token)
=====================================  =======  ==============================================

Errors are JSON, ``{"error": {"code", "message"}}``: 400 ``bad_request``, 401
``unauthorized`` (no token, or an unknown one; checked before anything else, so an
unauthenticated caller learns nothing, not even which agents exist), 403 ``forbidden`` (a
read token on an admin call), 404 ``not_found`` / ``unknown_agent``, 405
``method_not_allowed``, 500 ``internal``.

The handlers read the app's orchestrator, so the ASGI app must run in the app's event loop
(:func:`govbus.inventory.serve` does that with uvicorn).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govbus.errors import ConfigError
from govbus.inventory import prometheus
from govbus.inventory.auth import Principal, Tokens
from govbus.inventory.auth import Scope as TokenScope
from govbus.inventory.model import (
    Activity,
    agent_entry,
    build_inventory,
    find_agent,
    policy_document,
)
from govbus.inventory.openapi import openapi_document
from govbus.orchestrator import App

#: The identity audited for pause and resume on a server started with ``insecure=True``.
ANONYMOUS: Final = "anonymous (insecure-no-auth)"
#: Seconds ``/readyz`` waits for the audit store to confirm it accepts writes.
READY_AUDIT_TIMEOUT: Final = 2.0

_REASONS: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    415: "unsupported_media_type",
}
_ASSETS: Final = {
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
#: The dashboard loads nothing from elsewhere and runs no inline code.
_PAGE_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=500)
    mode: Literal["fallback", "hold"] = "fallback"


class _ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=500)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return _error(exc.status, exc.code, exc.message, headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _REASONS.get(exc.status_code, "error")
    return _error(exc.status_code, code, exc.detail, dict(exc.headers or {}))


async def _on_crash(request: Request, exc: Exception) -> Response:
    return _error(500, "internal", "internal error; see the server log")


class _Headers:
    """Adds headers every response should carry (no sniffing, no caching of live data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        page = scope["path"] in _ASSETS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"cache-control", b"no-store"))
                headers.append((b"referrer-policy", b"no-referrer"))
                if page:
                    headers.append((b"content-security-policy", _PAGE_POLICY.encode()))
                    headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class InventoryApi:
    """The state behind the routes: the app, its tokens, and its :class:`Activity`."""

    def __init__(
        self,
        app: App,
        *,
        tokens: Tokens | None,
        insecure: bool = False,
        activity: Activity | None = None,
    ) -> None:
        if not tokens and not insecure:
            raise ConfigError(
                "the inventory endpoint needs at least one bearer token (or insecure=True)"
            )
        self.app = app
        self.tokens = tokens or Tokens()
        self.insecure = insecure
        self.activity = activity or Activity(app)
        assets = resources.files("govbus.inventory")
        self._assets = {
            path: ((assets / name).read_bytes(), media) for path, (name, media) in _ASSETS.items()
        }

    # -- auth ------------------------------------------------------------------------------

    def authorize(self, request: Request, scope: TokenScope) -> Principal:
        """The caller of ``request`` if it holds ``scope``; else raises 401 or 403."""
        if self.insecure:
            return Principal(ANONYMOUS, "admin")
        header = request.headers.get("authorization", "")
        kind, _, presented = header.partition(" ")
        if kind.lower() != "bearer" or not presented.strip():
            raise ApiError(401, "unauthorized", "a bearer token is required")
        principal = self.tokens.authenticate(presented.strip())
        if principal is None:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")
        if not principal.allows(scope):
            raise ApiError(
                403, "forbidden", f"this call needs a token with scope {scope!r}"
            )  # fmt: skip
        return principal

    # -- routes ----------------------------------------------------------------------------

    async def inventory(self, request: Request) -> Response:
        self.authorize(request, "read")
        return JSONResponse(build_inventory(self.app, self.activity))

    async def agent(self, request: Request) -> Response:
        self.authorize(request, "read")
        name = request.path_params["name"]
        found = find_agent(build_inventory(self.app, self.activity), name)
        if found is None:
            raise self._unknown(name)
        return JSONResponse(found)

    async def policy(self, request: Request) -> Response:
        self.authorize(request, "read")
        return JSONResponse(policy_document(self.app))

    async def metrics(self, request: Request) -> Response:
        self.authorize(request, "read")
        self.activity.observe()
        body = prometheus.render(self.app, self.activity)
        return Response(body, media_type=prometheus.CONTENT_TYPE)

    async def pause(self, request: Request) -> Response:
        principal = self.authorize(request, "admin")
        name = self._known(request.path_params["name"])
        body = _PauseBody.model_validate(await self._body(request))
        self.app.pause(name, by=principal.name, reason=body.reason, mode=body.mode)
        return self._entry(name)

    async def resume(self, request: Request) -> Response:
        principal = self.authorize(request, "admin")
        name = self._known(request.path_params["name"])
        body = _ResumeBody.model_validate(await self._body(request))
        self.app.resume(name, by=principal.name, reason=body.reason)
        return self._entry(name)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks, reason = await self.readiness()
        return JSONResponse(
            {"ready": reason is None, "reason": reason, "checks": checks},
            status_code=200 if reason is None else 503,
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def asset(self, request: Request) -> Response:
        body, media = self._assets[request.url.path]
        return Response(body, media_type=media)

    # -- readiness -------------------------------------------------------------------------

    async def readiness(self) -> tuple[dict[str, str], str | None]:
        """Each part's state, and why the app is not ready (None when it is)."""
        orch = self.app.orchestrator
        checks = {"orchestrator": orch.state, "bus": "unknown", "audit": "unknown"}
        if orch.state != "running":
            return checks, f"the orchestrator is {orch.state}, not running"
        connected = getattr(self.app.bus, "connected", None)
        if connected is False:
            checks["bus"] = "disconnected"
            return checks, "the bus is not connected"
        checks["bus"] = "connected" if connected else "started"
        try:
            # A flush is the store's own promise that what it took is committed: if it cannot
            # keep it (writer dead, database unreachable), it raises or stalls.
            await asyncio.wait_for(self.app.audit.flush(), READY_AUDIT_TIMEOUT)
        except TimeoutError:
            checks["audit"] = "stalled"
            return checks, f"the audit store did not confirm a flush within {READY_AUDIT_TIMEOUT}s"
        except Exception as exc:
            checks["audit"] = "unavailable"
            code = getattr(exc, "code", type(exc).__name__)
            return checks, f"the audit store does not accept writes ({code})"
        checks["audit"] = "writable"
        return checks, None

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _unknown(name: str) -> ApiError:
        return ApiError(404, "unknown_agent", f"no agent named {name!r}")

    def _known(self, name: str) -> str:
        if name not in self.app.registry:
            raise self._unknown(name)
        return name

    def _entry(self, name: str) -> Response:
        card = self.app.registry.get(name).card
        return JSONResponse(agent_entry(self.app, card, self.activity))

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        media = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if media != "application/json":
            raise ApiError(415, "unsupported_media_type", "the body must be application/json")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "bad_request", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object")
        return data


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )
    return _error(400, "bad_request", problems)


def create_asgi_app(
    app: App,
    *,
    tokens: Tokens | None = None,
    insecure: bool = False,
    activity: Activity | None = None,
) -> ASGIApp:
    """The inventory endpoint of ``app`` as an ASGI application.

    Args:
        app: the govbus app (started by the caller; the endpoint reads it live).
        tokens: the bearer tokens (see :mod:`govbus.inventory.auth`).
        insecure: serve without authentication (every caller may read, pause and resume, and
            is audited as ``anonymous (insecure-no-auth)``). For local experiments only.
        activity: the app's long-lived :class:`Activity` (default: a new one).

    Raises:
        ConfigError: no token and not ``insecure``.
    """
    api = InventoryApi(app, tokens=tokens, insecure=insecure, activity=activity)
    get = ["GET"]
    handler = Callable[[Request], Awaitable[Response]]
    routes: list[tuple[str, handler, list[str]]] = [
        ("/v1/inventory", api.inventory, get),
        ("/v1/inventory/{name}", api.agent, get),
        ("/v1/policy", api.policy, get),
        ("/v1/agents/{name}/pause", api.pause, ["POST"]),
        ("/v1/agents/{name}/resume", api.resume, ["POST"]),
        ("/metrics", api.metrics, get),
        ("/healthz", api.healthz, get),
        ("/readyz", api.readyz, get),
        ("/openapi.json", api.openapi, get),
        *((path, api.asset, get) for path in _ASSETS),
    ]
    starlette = Starlette(
        routes=[Route(path, fn, methods=methods) for path, fn, methods in routes],
        exception_handlers={
            ApiError: _on_api_error,
            HTTPException: _on_http_error,
            ValidationError: _on_validation_error,
            Exception: _on_crash,
        },
    )
    starlette.state.api = api
    return _Headers(starlette)
