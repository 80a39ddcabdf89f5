"""Alert hooks: where the orchestrator reports what an operator should know about.

An alert hook is any callable taking an :class:`~govbus.orchestrator.Alert` (plain or async).
:func:`webhook` builds one that POSTs each alert as JSON, for a chat channel, an incident tool
or a SIEM; ``App(alert="https://...")`` does the same from a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from govbus.errors import ConfigError
from govbus.orchestrator.core import Alert, AlertHook

log = logging.getLogger("govbus.alerts")


def alert_json(alert: Alert, app: str | None = None) -> dict[str, Any]:
    """The JSON body a webhook receives (no payload text: ids, agent, cause and detail only)."""
    body: dict[str, Any] = {
        "kind": alert.kind,
        "agent": alert.agent,
        "message_id": alert.message_id or None,
        "cause": alert.cause,
        "detail": alert.detail,
    }
    if app is not None:
        body["app"] = app
    return body


def webhook(
    url: str,
    *,
    app: str | None = None,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> AlertHook:
    """An alert hook that POSTs every alert to ``url`` as JSON (see :func:`alert_json`).

    A receiver that is down or answers with an error is logged, never raised: alerting must not
    break the dispatch that caused it (the orchestrator guards its hook as well).

    Raises:
        ConfigError: ``url`` is not an http(s) URL, or httpx (the ``http`` extra) is missing.
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"alert webhook {url!r} must be an http:// or https:// URL")
    try:
        import httpx
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigError("an alert webhook needs httpx: pip install 'govbus[http]'") from None
    sent_headers = {"content-type": "application/json", **dict(headers or {})}

    async def post(alert: Alert) -> None:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(url, json=alert_json(alert, app), headers=sent_headers)
            if response.status_code >= 400:
                log.warning("alert webhook %s answered %s", url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("alert webhook %s failed: %s", url, exc)

    return post
