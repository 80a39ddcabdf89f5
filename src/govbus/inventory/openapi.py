"""The OpenAPI 3.1 document of the inventory endpoint (``GET /openapi.json``).

Written by hand as the contract: the response schemas forbid unknown fields, and the tests run
schemathesis against a served app with this document, so the server cannot drift from it.
"""

from __future__ import annotations

import copy
from typing import Any, Final

_NAME: Final = {"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,63}$"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}


def _object(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {"type": "string", "description": "a stable, machine-readable code"},
                    "message": {"type": "string"},
                }
            )
        }
    ),
    "Counters": _object(
        {
            "handled": {"type": "integer", "minimum": 0},
            "denied": {"type": "integer", "minimum": 0},
            "fallbacks": {"type": "integer", "minimum": 0},
            "failures": {"type": "integer", "minimum": 0},
            "last_seen": _TIME_OR_NULL,
        }
    ),
    "Pause": _object(
        {
            "by": {"type": "string"},
            "reason": {"type": "string"},
            "mode": {"enum": ["fallback", "hold"]},
            "at": _TIME_OR_NULL,
        }
    ),
    "Agent": _object(
        {
            "name": _NAME,
            "version": {"type": "string"},
            "description": {"type": "string"},
            "owner": {"type": "string"},
            "handles": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "risk": {"enum": ["low", "medium", "high", "critical"]},
            "clearance": {"enum": ["public", "internal", "pii", "secret"]},
            "region": _TEXT_OR_NULL,
            "model": {
                "oneOf": [
                    {"type": "null"},
                    _object({"provider": {"type": "string"}, "name": {"type": "string"}}),
                ]
            },
            "deterministic": {"type": "boolean"},
            "fallback": {"oneOf": [{"type": "null"}, _NAME]},
            "timeout_seconds": {"type": "number", "exclusiveMinimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {
                "enum": ["healthy", "degraded", "circuit_open", "paused"],
                "description": "paused (kill switch), circuit_open (breaker open), degraded "
                "(breaker half-open, or a fallback or failure in the recent window), healthy",
            },
            "breaker": {"enum": ["closed", "half_open", "open"]},
            "paused": {"oneOf": [{"type": "null"}, _ref("Pause")]},
            "counters": _ref("Counters"),
        }
    ),
    "PolicySummary": _object(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "mode": {"enum": ["enforce", "monitor"]},
            "approved": {"type": "boolean"},
            "approved_by": _TEXT_OR_NULL,
            "approved_on": {"type": ["string", "null"], "format": "date"},
            "approval_reference": _TEXT_OR_NULL,
            "approval_error": {"type": "string"},
        },
        required=[
            "name",
            "version",
            "sha256",
            "mode",
            "approved",
            "approved_by",
            "approved_on",
            "approval_reference",
        ],
    ),
    "Recent": _object(
        {
            "window_seconds": {"type": "number"},
            "observed_seconds": {"type": "number", "minimum": 0},
            "denied_by_check": {"type": "object", "additionalProperties": {"type": "integer"}},
            "fallbacks_by_agent": {"type": "object", "additionalProperties": {"type": "integer"}},
            "failures_by_agent": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    ),
    "Inventory": _object(
        {
            "app": _object(
                {
                    "name": {"type": "string"},
                    "node": {"type": "string"},
                    "state": {"enum": ["new", "running", "closing", "closed"]},
                    "bus": {"type": "string"},
                    "govbus_version": {"type": "string"},
                    "generated_at": {"type": "string", "format": "date-time"},
                }
            ),
            "policy": _ref("PolicySummary"),
            "agents": {"type": "array", "items": _ref("Agent")},
            "recent": _ref("Recent"),
        }
    ),
    "Policy": _object(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "mode": {"enum": ["enforce", "monitor"]},
            "approved": {"type": "boolean"},
            "approved_by": _TEXT_OR_NULL,
            "approved_on": {"type": ["string", "null"], "format": "date"},
            "approval_reference": _TEXT_OR_NULL,
            "approval_error": _TEXT_OR_NULL,
            "owner": _TEXT_OR_NULL,
            "description": _TEXT_OR_NULL,
            "checks": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "kind": {"type": "string"},
                        "mode": {"enum": ["enforce", "monitor"]},
                        "summary": {"type": "string"},
                        "description": {"type": "string"},
                    }
                ),
            },
            "shadow": {
                "oneOf": [
                    {"type": "null"},
                    _object(
                        {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "sha256": {"type": "string"},
                        }
                    ),
                ]
            },
            "summary": {
                "type": "string",
                "description": "a plain-language account of the policy (Markdown), as "
                "`govbus policy explain` prints it",
            },
        }
    ),
    "Health": _object({"status": {"const": "ok"}}),
    "Ready": _object(
        {
            "ready": {"type": "boolean"},
            "reason": _TEXT_OR_NULL,
            "checks": _object(
                {
                    "orchestrator": {"type": "string"},
                    "bus": {"type": "string"},
                    "audit": {"type": "string"},
                }
            ),
        }
    ),
    "PauseRequest": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 500},
            "mode": {
                "enum": ["fallback", "hold"],
                "description": "fallback (default): the agent's messages go to its fallback; "
                "hold: they wait until it is resumed",
            },
        },
        "additionalProperties": False,
    },
    "ResumeRequest": {
        "type": "object",
        "properties": {"reason": {"type": "string", "maxLength": 500}},
        "additionalProperties": False,
    },
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    words = {
        400: "The request body is not valid",
        401: "No bearer token, or an unknown one",
        403: "The token lacks the scope this call needs",
        404: "No agent of that name",
    }
    return {str(code): _json("Error", words[code]) for code in codes}


_AGENT_PARAM: Final = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": _NAME,
    "description": "the agent's name",
}


def _admin(action: str, body: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": f"{action}Agent",
            "summary": summary,
            "tags": ["admin"],
            "security": [{"bearer": []}],
            "parameters": [_AGENT_PARAM],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref(body)}},
            },
            "responses": {
                "200": _json("Agent", "The agent's inventory entry after the change"),
                **_errors(400, 401, 403, 404),
            },
        }
    }


_DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "govbus inventory",
        "version": "1",
        "description": "What AI runs, under which policy, with which risk, owner and fallback: "
        "built from the live registry. Read calls need a bearer token with scope read or "
        "admin; pausing and resuming need admin, and are audited with the token's name.",
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/inventory": {
            "get": {
                "operationId": "getInventory",
                "summary": "Every agent with its card, status and counters; the active policy",
                "responses": {
                    "200": _json("Inventory", "The inventory"),
                    **_errors(401, 403),
                },
            }
        },
        "/v1/inventory/{name}": {
            "get": {
                "operationId": "getAgent",
                "summary": "One agent's inventory entry",
                "parameters": [_AGENT_PARAM],
                "responses": {
                    "200": _json("Agent", "The agent"),
                    **_errors(401, 403, 404),
                },
            }
        },
        "/v1/policy": {
            "get": {
                "operationId": "getPolicy",
                "summary": "The active policy, its hash, approval and a plain-language summary",
                "responses": {
                    "200": _json("Policy", "The active policy"),
                    **_errors(401, 403),
                },
            }
        },
        "/v1/agents/{name}/pause": _admin(
            "pause", "PauseRequest", "Pause an agent (the kill switch); audited"
        ),
        "/v1/agents/{name}/resume": _admin(
            "resume", "ResumeRequest", "Resume a paused agent; audited"
        ),
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Counters, breaker states and statuses (Prometheus text format)",
                "responses": {
                    "200": {
                        "description": "The exposition",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401, 403),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "summary": "The process is up (no token needed)",
                "security": [],
                "responses": {"200": _json("Health", "Alive")},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "getReady",
                "summary": "The orchestrator runs, the bus is up and the audit store accepts "
                "writes (no token needed)",
                "security": [],
                "responses": {
                    "200": _json("Ready", "Ready"),
                    "503": _json("Ready", "Not ready, with the reason"),
                },
            }
        },
        "/": {
            "get": {
                "operationId": "getDashboard",
                "summary": "The read-only dashboard page (it asks for a token)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change it)."""
    return copy.deepcopy(_DOCUMENT)
