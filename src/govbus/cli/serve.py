"""``govbus serve`` (agents and the inventory endpoint in one process) and ``govbus inventory``
(the same inventory document, offline, as JSON, Markdown or CSV)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib
import io
import json
import signal
import sys
from typing import Any

from govbus.errors import ConfigError
from govbus.inventory import ADMIN_TOKEN_ENV, READ_TOKEN_ENV, Activity, build_inventory
from govbus.inventory.auth import configured_tokens
from govbus.orchestrator import App, load_app

NO_TOKEN = f"""\
govbus: error: govbus serve needs a bearer token for its endpoint, and none is configured.
Set {READ_TOKEN_ENV} (read access: inventory, policy, metrics) and/or {ADMIN_TOKEN_ENV}
(also pause and resume), each at least 16 random characters, e.g.
  export {READ_TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe())')
or give --tokens FILE (YAML: name: {{token: ..., scope: read|admin}}).
For a local experiment only, --insecure-no-auth serves without any token."""


def run_serve_command(args: argparse.Namespace) -> int:
    """Run ``govbus serve`` or ``govbus inventory``; the exit code."""
    if args.command == "inventory":
        return _inventory(args)
    return _serve_command(args)


def open_app(ref: str, *, bus: str, audit: str, policy: str | None) -> App:
    """The app ``MODULE:APP`` names: an :class:`App` object as it is, or a factory called with
    ``bus=``, ``audit=`` (and ``policy=`` when given)."""
    module_name, _, attr = ref.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        target = None  # load_app reports it with the reason
    if isinstance(target, App):
        if policy is not None:
            raise ConfigError(f"--policy needs an app factory; {ref} is an App object")
        return target
    extra = {"policy": policy} if policy is not None else {}
    return load_app(ref, bus=bus, audit=audit, **extra)


# -- govbus inventory --------------------------------------------------------------------------


def _inventory(args: argparse.Namespace) -> int:
    app = open_app(args.app, bus="memory://", audit="memory://", policy=args.policy)
    document = build_inventory(app)
    if args.format == "json":
        print(json.dumps(document, indent=2))
    elif args.format == "csv":
        sys.stdout.write(inventory_csv(document))
    else:
        sys.stdout.write(inventory_markdown(document))
    return 0


CSV_COLUMNS = (
    "name", "version", "status", "risk", "owner", "description", "handles", "clearance",
    "region", "model", "deterministic", "fallback", "handled", "denied", "fallbacks",
    "failures", "last_seen", "policy", "policy_version", "policy_sha256", "policy_approved",
)  # fmt: skip


def _row(agent: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    model = agent["model"]
    return {
        **{k: agent[k] for k in ("name", "version", "status", "risk", "owner", "description")},
        "handles": " ".join(agent["handles"]),
        "clearance": agent["clearance"],
        "region": agent["region"] or "",
        "model": f"{model['provider']}/{model['name']}" if model else "",
        "deterministic": str(agent["deterministic"]).lower(),
        "fallback": agent["fallback"] or "",
        **{k: agent["counters"][k] for k in ("handled", "denied", "fallbacks", "failures")},
        "last_seen": agent["counters"]["last_seen"] or "",
        "policy": policy["name"],
        "policy_version": policy["version"],
        "policy_sha256": policy["sha256"],
        "policy_approved": str(policy["approved"]).lower(),
    }


def inventory_csv(document: dict[str, Any]) -> str:
    """One row per agent, with the active policy on every row (a spreadsheet needs no join)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for agent in document["agents"]:
        writer.writerow(_row(agent, document["policy"]))
    return out.getvalue()


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def inventory_markdown(document: dict[str, Any]) -> str:
    """The inventory as a Markdown report for people."""
    app, policy = document["app"], document["policy"]
    if policy["approved"]:
        approval = (
            f"approved by {policy['approved_by']} on {policy['approved_on']} "
            f"({policy['approval_reference']})"
        )
    else:
        approval = "**NOT APPROVED** (no approval record for this sha256)"
    lines = [
        f"# AI inventory: {_md(app['name'])}",
        "",
        f"Generated {app['generated_at']} by govbus {app['govbus_version']} "
        f"(node {app['node']}, {app['state']}).",
        "",
        f"- Policy: {_md(policy['name'])} {_md(policy['version'])} ({policy['mode']})",
        f"- sha256: `{policy['sha256']}`",
        f"- Approval: {approval}",
        "",
        "| agent | status | risk | owner | handles | model | fallback | clearance | region "
        "| handled | denied | fallbacks | failures |",
        "|---|---|---|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for a in document["agents"]:
        model = a["model"]
        c = a["counters"]
        cells = [
            a["name"], a["status"], a["risk"], a["owner"], ", ".join(a["handles"]),
            f"{model['provider']}/{model['name']}" if model else "deterministic",
            a["fallback"] or "none", a["clearance"], a["region"] or "-",
            c["handled"], c["denied"], c["fallbacks"], c["failures"],
        ]  # fmt: skip
        lines.append("| " + " | ".join(_md(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


# -- govbus serve ------------------------------------------------------------------------------


def _serve_command(args: argparse.Namespace) -> int:
    tokens = configured_tokens(args.tokens)
    if not tokens and not args.insecure_no_auth:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    try:
        from govbus.inventory.server import serve
    except ImportError as exc:
        raise ConfigError(
            f"govbus serve needs the http extra: pip install 'govbus[http]' ({exc})"
        ) from None
    app = open_app(args.app, bus=args.bus, audit=args.audit, policy=args.policy)
    activity = Activity(app, window=args.recent_window)

    def ready(url: str) -> None:
        policy = app.policy
        who = ", ".join(tokens.names) if tokens else "NO AUTHENTICATION (--insecure-no-auth)"
        print(
            f"govbus serve {app.node}: {len(app.registry)} agents of {args.app}; policy "
            f"{policy.name} {policy.version} ({policy.sha256[:12]}...); audit {args.audit}; "
            f"listening on {url} (dashboard {url}/); tokens: {who}",
            file=sys.stderr,
            flush=True,
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await serve(
                app,
                tokens=tokens,
                insecure=args.insecure_no_auth,
                host=args.host,
                port=args.port,
                stop=stop,
                on_ready=ready,
                activity=activity,
                drain_timeout=args.drain_timeout,
            )
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    if args.insecure_no_auth:
        print(
            "govbus serve: WARNING: --insecure-no-auth: anyone who can reach "
            f"{args.host}:{args.port} can read the inventory and pause agents",
            file=sys.stderr,
        )
    asyncio.run(main())
    counters = dict(app.orchestrator.counters)
    print(f"govbus serve {app.node}: drained and stopped; {counters}", file=sys.stderr)
    return 0
