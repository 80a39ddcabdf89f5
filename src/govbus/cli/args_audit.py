"""The ``govbus audit`` command line: its parser (kept apart from the commands so building the
parser imports nothing heavy)."""

from __future__ import annotations

from typing import Any


def add_audit_commands(commands: Any) -> None:
    """Add ``audit`` and its actions to the top-level subparsers."""
    audit = commands.add_parser("audit", help="inspect the audit log")
    audit_cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = audit_cmds.add_parser(
        "verify",
        help="recompute every hash chain and name the first broken record",
        description="Recompute every hash chain in an audit store. Exit 0 if every record "
        "verifies, 1 if a record was changed, removed or reordered.",
    )
    verify.add_argument(
        "url",
        nargs="?",
        default="sqlite:///.govbus/audit.db",
        help="audit store URL or SQLite path (default: sqlite:///.govbus/audit.db)",
    )
    verify.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table for people (default), json for machines",
    )
