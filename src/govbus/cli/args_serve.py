"""The ``govbus serve`` and ``govbus inventory`` command line: their parsers (kept apart from
the commands so building the parser imports nothing heavy)."""

from __future__ import annotations

import argparse

from govbus.cli.argtypes import port, seconds

#: The app served unless ``--app`` names another.
DEFAULT_APP = "govbus.examples.finance:create_app"

SERVE_DESCRIPTION = """\
Run an app's agents and its inventory endpoint together, in one process and one event loop:
what AI runs, under which policy, with which risk, owner and fallback, built live from the
registry. Endpoints: GET /v1/inventory, /v1/inventory/{agent}, /v1/policy, /metrics
(Prometheus), /healthz, /readyz, /openapi.json, the dashboard at /; POST
/v1/agents/{agent}/pause and /resume (the kill switch, audited with the token's name).

Read calls need a bearer token with scope read or admin, pause and resume need admin:
GOVBUS_INVENTORY_TOKEN (read, audited as inventory-token), GOVBUS_ADMIN_TOKEN (admin,
audited as admin-token), or --tokens FILE, a YAML mapping of names to {token, scope}:

  risk-office: {token: "<16+ random characters>", scope: read}
  ops-oncall:  {token: "<16+ random characters>", scope: admin}

With no token configured the command refuses to start (exit 2) unless --insecure-no-auth
is given. SIGTERM or SIGINT stops taking requests, drains in-flight work and flushes the
audit log, then exits 0."""

SERVE_EPILOG = """\
examples:
  GOVBUS_INVENTORY_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe())') \\
      govbus serve                               the example app on http://127.0.0.1:8080
  govbus serve --app mypkg.main:create_app --tokens tokens.yaml --port 9000 \\
      --audit postgresql+psycopg://audit@db/audit
  govbus serve --insecure-no-auth                local experiments only
  curl -H "Authorization: Bearer $GOVBUS_INVENTORY_TOKEN" http://127.0.0.1:8080/v1/inventory"""

INVENTORY_DESCRIPTION = """\
Print the inventory of an app without running it: the same document GET /v1/inventory
serves (every agent's card, status and counters, the active policy with its hash and
approval), built from the app's registry. Offline, nothing has run, so every counter is 0 and
every agent healthy."""


def _app_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--app",
        metavar="MODULE:APP",
        default=DEFAULT_APP,
        help="an App, or a factory taking bus= and audit= (default: the example finance app)",
    )
    command.add_argument(
        "--policy", metavar="FILE", help="policy YAML passed to the factory as policy="
    )


def add_serve_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``inventory`` to the ``govbus`` subcommands."""
    serve = commands.add_parser(
        "serve",
        help="run an app's agents with the inventory endpoint and dashboard (HTTP)",
        description=SERVE_DESCRIPTION,
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _app_option(serve)
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=port, default=8080, help="port to listen on (default 8080; 0: any free)"
    )
    serve.add_argument(
        "--audit",
        default="sqlite:///.govbus/audit.db",
        metavar="URL",
        help="audit store URL (default: sqlite:///.govbus/audit.db)",
    )
    serve.add_argument("--bus", default="memory://", metavar="URL", help="bus URL (memory://)")
    serve.add_argument(
        "--tokens", metavar="FILE", help="YAML mapping token names to {token, scope}"
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve without any token: anyone who reaches the port may read and pause",
    )
    serve.add_argument(
        "--recent-window",
        type=seconds,
        default=300.0,
        metavar="S",
        help="seconds a fallback or failure keeps an agent 'degraded', and the span of the "
        "recent counts (default 300)",
    )
    serve.add_argument(
        "--drain-timeout", type=seconds, default=30.0, metavar="S", help="drain on stop (30 s)"
    )

    inventory = commands.add_parser(
        "inventory",
        help="print an app's AI inventory (agents, risk, owner, fallback, policy) offline",
        description=INVENTORY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  govbus inventory --format md\n"
        "  govbus inventory --app mypkg.main:create_app --format csv > inventory.csv",
    )
    _app_option(inventory)
    inventory.add_argument(
        "--format",
        choices=["json", "md", "csv"],
        default="json",
        help="json (the /v1/inventory document; default), md (Markdown) or csv (one row per agent)",
    )
