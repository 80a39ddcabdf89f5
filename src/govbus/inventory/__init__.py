"""The AI inventory: what runs, under which policy, with which risk, owner and fallback.

:func:`build_inventory` makes the document from a live app (no HTTP); :func:`create_asgi_app`
serves it with the policy, metrics, health and the kill switch (Starlette; the ``http``
extra); :func:`serve` runs an app's agents and that endpoint in one event loop (uvicorn).
"""

from typing import TYPE_CHECKING

from govbus.inventory.auth import (
    ADMIN_TOKEN_ENV,
    READ_TOKEN_ENV,
    Principal,
    Token,
    Tokens,
    configured_tokens,
    load_tokens,
    tokens_from_env,
)
from govbus.inventory.model import (
    DEFAULT_WINDOW,
    STATUSES,
    Activity,
    Status,
    agent_entry,
    agent_status,
    build_inventory,
    policy_document,
)
from govbus.inventory.openapi import openapi_document

if TYPE_CHECKING:
    from govbus.inventory.app import create_asgi_app
    from govbus.inventory.server import serve

__all__ = [
    "ADMIN_TOKEN_ENV",
    "DEFAULT_WINDOW",
    "READ_TOKEN_ENV",
    "STATUSES",
    "Activity",
    "Principal",
    "Status",
    "Token",
    "Tokens",
    "agent_entry",
    "agent_status",
    "build_inventory",
    "configured_tokens",
    "create_asgi_app",
    "load_tokens",
    "openapi_document",
    "policy_document",
    "serve",
    "tokens_from_env",
]


def __getattr__(name: str) -> object:
    # The ASGI app and the server need the http extra (starlette, uvicorn); the document
    # builder and `govbus inventory` do not.
    if name == "create_asgi_app":
        from govbus.inventory.app import create_asgi_app

        return create_asgi_app
    if name == "serve":
        from govbus.inventory.server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
