"""The ``govbus audit`` command line: its parser (kept apart from the commands so building the
parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from typing import Any

from govbus.cli.args_policy import iso_time, positive_int
from govbus.cli.argtypes import count, seconds

DEFAULT_AUDIT_URL = "sqlite:///.govbus/audit.db"

AUDIT_DESCRIPTION = """\
Inspect and maintain the hash-chained audit log: verify it, follow it, export it for an
auditor, and prune old records without breaking the chains. URL is a SQLAlchemy URL
(sqlite:///path.db, postgresql://user@host/db) or a SQLite file path."""

VERIFY_DESCRIPTION = """\
Recompute every hash chain in an audit store (or in a file written by 'govbus audit export')
and name the first changed, removed or reordered record. Per chain, every record's hash must
recompute from its contents, each record must carry the previous record's hash, and the chain
must reach its head (so a deleted tail is caught). A pruned chain starts at its checkpoint
instead of at record 1; the checkpoints must match the digest in the newest audit_prune record.

The records are read in one snapshot, so verifying while writers append (or a prune runs) is
safe. A SQLite store of more than 200,000 records is verified on several cores (--workers); if
that finds anything amiss, it is verified again in one process, which names the first problem.
A progress bar goes to stderr when it is a terminal.

Exit 0 if everything verifies, 1 if something does not, 2 on bad input (no database, bad URL,
unreadable export file)."""

VERIFY_EPILOG = """\
examples:
  govbus audit verify                                 the default .govbus/audit.db
  govbus audit verify postgresql://audit@db/audit --format json
  govbus audit verify --export audit-2026-11.jsonl    re-verify an export, without the database"""

TAIL_DESCRIPTION = """\
Print the newest audit records across every chain, oldest first (by timestamp). With --follow,
keep printing records as they are committed (polling every --interval seconds) until Ctrl-C.
table is one line per record: time, chain#seq, kind, outcome, message type, sender -> recipient,
message id. jsonl is one JSON object per record with every field, as 'audit export' writes it."""

TAIL_EPILOG = """\
examples:
  govbus audit tail                                   the last 20 records
  govbus audit tail -n 100 postgresql://audit@db/audit
  govbus audit tail --follow --format jsonl | jq -c 'select(.outcome == "deny")'"""

EXPORT_DESCRIPTION = """\
Write audit records for an auditor or a regulator: every field of each record (node, seq,
ts, kind, outcome, message_id, correlation_id, msg_type, sender, recipient, policy_sha256,
data, prev_hash, hash), in chain order, streamed (constant memory, however many records).

jsonl: the first line is a manifest ({"govbus_audit_export": 1, ...}) with each chain's head
and checkpoint and the filters used; every further line is one record, data as a JSON object.
An unfiltered JSONL export can be verified as completely as the database itself:
'govbus audit verify --export FILE'. csv: a header row, then one row per record, data as its
JSON text, a missing value as an empty cell; 'verify --export' checks each record's hash and
the links between consecutive records (CSV has no room for heads and checkpoints).

Filters: --since (inclusive) and --until (exclusive) on the record's timestamp, --type a glob
on the message type (case-sensitive), --agent the sender or the recipient, --kind the record
kind. With --out the file is written under a temporary name and renamed when complete, so a
failed export leaves nothing behind; it is readable by its owner only (mode 0600). Without
--out the records go to stdout. A progress bar goes to stderr when it is a terminal."""

EXPORT_EPILOG = """\
examples:
  govbus audit export --out audit.jsonl                       everything, verifiable
  govbus audit export postgresql://audit@db/audit --since 2026-11-01 --until 2026-12-01 \\
      --format csv --out november.csv
  govbus audit export --type 'advice.*' --agent portfolio_advisor > advisor.jsonl
  govbus audit verify --export audit.jsonl

dates are ISO 8601 (2026-11-01, 2026-11-01T09:30, 2026-11-01T09:30:00+01:00); a time
without an offset is UTC."""

PRUNE_DESCRIPTION = """\
Retention: delete the records older than --before from every chain, and keep every chain
verifiable. Per chain, in steps of at most --batch records (each step one transaction), prune
reads the records it is about to delete and verifies them (a chain that does not verify is
left alone: deleting it would destroy the evidence), deletes them, moves the chain's checkpoint
to the last deleted record (its seq, hash and timestamp: the first kept record chains onto
it), and appends an audit_prune record (who, which chain, which records, and a digest of every
checkpoint) to this process's own chain. A chain is cut at its first record at or after
--before; older records after it are kept, so the chain stays contiguous.

Live writers may go on appending meanwhile: prune only deletes records it has read, never a
chain's head. On SQLite each step holds the write lock while it deletes (writers wait). The
first prune of a database adds the checkpoints table (schema version 2).

Without --yes, prune shows what it would delete and asks (and refuses when stdin is not a
terminal). Exit 0 when done, 1 if a chain was left alone because it does not verify, 2 on bad
input (bad URL or date, a date in the future)."""

PRUNE_EPILOG = """\
examples:
  govbus audit prune sqlite:///.govbus/audit.db --before 2026-01-01 --dry-run
  govbus audit prune postgresql://audit@db/audit --before 2026-01-01 --yes --by ops-retention
  govbus audit verify postgresql://audit@db/audit     the pruned chains still verify

dates are ISO 8601 (2026-01-01, 2026-01-01T00:00:00Z); a time without an offset is UTC."""


def _url(cmd: argparse.ArgumentParser, *, optional: bool = True) -> None:
    if optional:
        cmd.add_argument(
            "url",
            nargs="?",
            default=None,
            metavar="URL",
            help=f"audit store URL or SQLite path (default: {DEFAULT_AUDIT_URL})",
        )
    else:
        cmd.add_argument("url", metavar="URL", help="audit store URL or SQLite path")


def _no_progress(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown on stderr only when stderr is a terminal)",
    )


def add_audit_commands(commands: Any) -> None:
    """Add ``audit`` and its actions to the top-level subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    audit = commands.add_parser(
        "audit", help="inspect the audit log", description=AUDIT_DESCRIPTION, formatter_class=raw
    )
    audit_cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = audit_cmds.add_parser(
        "verify",
        help="recompute every hash chain and name the first broken record",
        description=VERIFY_DESCRIPTION,
        epilog=VERIFY_EPILOG,
        formatter_class=raw,
    )
    _url(verify)
    verify.add_argument(
        "--export",
        metavar="FILE",
        help="verify this export file (JSONL or CSV from 'govbus audit export') instead of a "
        "database",
    )
    verify.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table for people (default), json for machines",
    )
    verify.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="processes for a large SQLite store (default: one per core, at most 8; 1: one "
        "process)",
    )
    _no_progress(verify)

    tail = audit_cmds.add_parser(
        "tail",
        help="print the newest records; --follow keeps printing new ones",
        description=TAIL_DESCRIPTION,
        epilog=TAIL_EPILOG,
        formatter_class=raw,
    )
    _url(tail)
    tail.add_argument(
        "-n",
        "--lines",
        type=count,
        default=20,
        metavar="N",
        help="how many of the newest records to print first (default 20)",
    )
    tail.add_argument(
        "-f", "--follow", action="store_true", help="keep printing records as they are committed"
    )
    tail.add_argument(
        "--format",
        choices=["table", "jsonl"],
        default="table",
        help="table for people (default), jsonl for machines",
    )
    tail.add_argument(
        "--interval",
        type=seconds,
        default=1.0,
        metavar="S",
        help="with --follow, seconds between polls (default 1)",
    )

    export = audit_cmds.add_parser(
        "export",
        help="write every field of the records as JSONL or CSV, for auditors",
        description=EXPORT_DESCRIPTION,
        epilog=EXPORT_EPILOG,
        formatter_class=raw,
    )
    _url(export)
    export.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        default="jsonl",
        help="jsonl (default; with a manifest, fully verifiable) or csv (for spreadsheets)",
    )
    export.add_argument(
        "--since", type=iso_time, metavar="ISO", help="only records at or after this time"
    )
    export.add_argument(
        "--until", type=iso_time, metavar="ISO", help="only records before this time"
    )
    export.add_argument(
        "--type", metavar="GLOB", help="only records whose message type matches (advice.*)"
    )
    export.add_argument("--agent", metavar="NAME", help="only records NAME sent or received")
    export.add_argument(
        "--kind", metavar="KIND", help="only records of this kind (decision, delivery, admin...)"
    )
    export.add_argument(
        "--out",
        metavar="FILE",
        help="write to FILE (atomically: complete or not at all) instead of stdout",
    )
    _no_progress(export)

    prune = audit_cmds.add_parser(
        "prune",
        help="delete records older than a date; the chains stay verifiable",
        description=PRUNE_DESCRIPTION,
        epilog=PRUNE_EPILOG,
        formatter_class=raw,
    )
    _url(prune, optional=False)
    prune.add_argument(
        "--before",
        type=iso_time,
        required=True,
        metavar="DATE",
        help="delete records older than this (ISO 8601; UTC without an offset)",
    )
    prune.add_argument("--yes", action="store_true", help="do not ask before deleting")
    prune.add_argument(
        "--dry-run",
        action="store_true",
        help="verify and report what would be deleted; change nothing",
    )
    prune.add_argument("--by", metavar="WHO", help="who prunes, for the audit record ($USER)")
    prune.add_argument(
        "--node",
        metavar="NAME",
        help="the chain the audit_prune records go to (default: <hostname>-<pid>)",
    )
    prune.add_argument(
        "--batch",
        type=positive_int,
        default=50_000,
        metavar="N",
        help="most records deleted per transaction (default 50000)",
    )
    prune.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table for people (default), json for machines",
    )
