"""The ``govbus policy`` command line: its parser (kept apart from the commands so building the
parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

#: The app whose agent cards replay uses unless ``--app`` names another.
DEFAULT_APP = "govbus.examples.finance:create_app"

REPLAY_DESCRIPTION = """\
Re-evaluate recorded traffic under a candidate policy, before you enforce it. Every
decision record in the audit log (one per message and recipient) is rebuilt into its
message and evaluated by the candidate for the same recipient at the recorded time; the
outcome is compared, check by check (checks are matched by id), with what the enforced
policy recorded. The report lists the decisions whose verdict changes (allow -> deny,
deny -> allow, or a denial now decided by another check) with counts and example message
ids, then per check how its outcome changes, and which checks could not be replayed and why.

What a record holds depends on the orchestrator's payload storage: with 'hash' (the
default) the envelope's header is kept but not the payload, so checks that read the payload
(pii, prompt_injection, json_schema, length, explainability) cannot be replayed; 'full'
keeps the payload; 'redacted' keeps it with personal data replaced by markers (pii and
length are then not comparable). rate_limit is never replayed: its token buckets are not in
the log. A check that cannot be replayed on a record is left out of that record's
comparison on both sides, and the report says how many decisions were compared that way.

Recipient and sender cards (clearance, risk, region, tenant tags) come from the app
(--app), as they are now. Nothing in the report holds payload text. Exit 0 whatever
changes; 2 on bad input (unreadable audit URL, invalid policy at file:line:col, bad date)."""

REPLAY_EPILOG = """\
examples:
  govbus policy replay --audit sqlite:///.govbus/audit.db --policy candidate.yaml
  govbus policy replay --audit postgresql://audit@db/audit --policy candidate.yaml \\
      --since 2026-11-01 --until 2026-12-01 --format json > replay.json
  govbus policy replay --audit .govbus/audit.db --policy candidate.yaml \\
      --app myapp.main:create_app --limit 10000

dates are ISO 8601 (2026-11-01, 2026-11-01T09:30, 2026-11-01T09:30:00+01:00); a time
without an offset is UTC; --since is inclusive, --until exclusive."""

SHADOW_DESCRIPTION = """\
Summarise shadow mode: while an orchestrator runs with a candidate policy beside the
enforced one (shadow=), it writes a 'shadow' audit record for every decision the candidate
would have made differently. This report counts, per candidate and per check, how many live
decisions the candidate would have changed and in which direction (allow -> deny, deny ->
allow, or only a check's outcome, e.g. allow -> would_deny), with the candidate's reason
codes and example message ids, over how many decisions were compared: the decision records
each node wrote while it shadowed that candidate (after an admin 'start' record naming it,
until that node's next start or stop).

With --policy, only that candidate (matched by its sha256) is reported. Exit 0; 2 on bad
input."""

SHADOW_EPILOG = """\
examples:
  govbus policy shadow-report --audit sqlite:///.govbus/audit.db
  govbus policy shadow-report --audit .govbus/audit.db --policy candidate.yaml \\
      --since 2026-11-20T00:00Z --format json"""


def iso_time(value: str) -> datetime:
    """An ``--since``/``--until`` value: ISO 8601, UTC when no offset is given."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time "
            "(e.g. 2026-11-01, 2026-11-01T09:30 or 2026-11-01T09:30:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def positive_int(value: str) -> int:
    """A ``--limit`` value: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def add_policy_commands(commands: Any) -> None:
    """Add ``policy`` and its actions to the top-level subparsers."""
    policy = commands.add_parser("policy", help="work with policy files")
    policy_cmds = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    hash_cmd = policy_cmds.add_parser(
        "hash",
        help="print the sha256 of a policy's canonical form (what approvals record)",
        description="Load and validate a policy file, then print the sha256 of its canonical "
        "form. Comments and layout do not change it; any semantic change does.",
    )
    hash_cmd.add_argument("file", nargs="+")
    lint_cmd = policy_cmds.add_parser(
        "lint",
        help="report errors and suspect constructs in policy files, with file:line:col",
        description=(
            "Check policy files without running them. Errors are everything that stops a\n"
            "policy from loading (YAML syntax, unknown keys and kinds with a 'did you mean',\n"
            "wrong types, duplicate ids, undeclared roles, invalid regexes, missing schema\n"
            "files). Warnings are policies that load but are suspect: the whole policy in\n"
            "monitor mode, roles no check uses, a check identical to an earlier one, when.types\n"
            "entries no message type can equal. Exit 1 if there is any error, 0 otherwise\n"
            "(warnings alone do not fail); 2 if a file does not exist."
        ),
        epilog="example:\n  govbus policy lint policies/*.yaml --format sarif > lint.sarif",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    lint_cmd.add_argument("file", nargs="+", help="policy YAML files")
    lint_cmd.add_argument(
        "--format",
        choices=["text", "json", "sarif"],
        default="text",
        help="text (file:line:col: severity: code: message, default), json, or SARIF 2.1.0 "
        "for code-scanning tools",
    )
    explain_cmd = policy_cmds.add_parser(
        "explain",
        help="describe a policy in plain language for a reviewer",
        description=(
            "Describe what a policy does, for a reviewer who does not read YAML: its hash,\n"
            "mode and roles, then each check in order: what it is, which messages it applies\n"
            "to, what it blocks or changes, its key parameters and what the audit records.\n"
            "With --approvals, also whether this exact policy text (by sha256) is approved."
        ),
        epilog=(
            "example:\n  govbus policy explain policies/default.yaml "
            "--approvals governance/approvals.yaml --format html > policy.html"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain_cmd.add_argument("file", help="policy YAML file")
    explain_cmd.add_argument(
        "--format", choices=["md", "html"], default="md", help="Markdown (default) or HTML"
    )
    explain_cmd.add_argument(
        "--approvals",
        metavar="FILE",
        help="approvals file (governance/approvals.yaml) to look the policy's sha256 up in; "
        "without it the policy is reported as not approved",
    )
    diff_cmd = policy_cmds.add_parser(
        "diff",
        help="list the semantic changes between two policy files",
        description=(
            "Compare two versions of a policy by meaning, not by text: metadata and mode,\n"
            "roles, checks added, removed, moved or changed (kind, mode, when, each parameter).\n"
            "With --cases, also run each test case against both and list the cases whose\n"
            "outcome changes. Exit 0 whether or not anything changed; 2 on bad input."
        ),
        epilog=(
            "example:\n  govbus policy diff old.yaml policies/default.yaml "
            "--cases policies/default.cases.yaml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    diff_cmd.add_argument("old", help="the policy before the change")
    diff_cmd.add_argument("new", help="the policy after the change")
    diff_cmd.add_argument(
        "--cases", metavar="FILE", help="a *.cases.yaml file whose outcomes to compare"
    )
    diff_cmd.add_argument(
        "--format", choices=["text", "json"], default="text", help="text (default) or json"
    )
    test_cmd = policy_cmds.add_parser(
        "test",
        help="run *.cases.yaml test cases and report coverage",
        description=(
            "Run policy test cases: each case's message must get its wanted verdict (and,\n"
            "with want_check, be decided by that check). Coverage counts the checks the\n"
            "cases have seen allowing and denying. PATH is a cases file, a policy file (its\n"
            "<name>.cases.yaml beside it) or a folder (every *.cases.yaml in it). Recipients\n"
            "named by cases are the example app's agents. Exit 1 if a case fails or coverage\n"
            "is below --min-coverage; 2 on bad input."
        ),
        epilog="example:\n  govbus policy test policies/ --min-coverage 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    test_cmd.add_argument("path", nargs="+", help="cases file, policy file or folder")
    test_cmd.add_argument(
        "--min-coverage",
        type=float,
        default=0.0,
        metavar="PCT",
        help="fail when coverage of (check, allow|deny) pairs is below PCT percent",
    )
    test_cmd.add_argument(
        "--format", choices=["text", "json"], default="text", help="text (default) or json"
    )
    replay_cmd = policy_cmds.add_parser(
        "replay",
        help="re-evaluate recorded traffic under a candidate policy; report what would change",
        description=REPLAY_DESCRIPTION,
        epilog=REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay_cmd.add_argument(
        "--audit",
        metavar="URL",
        required=True,
        help="the audit log: a SQLAlchemy URL (sqlite:///.govbus/audit.db, "
        "postgresql://user@host/db) or a SQLite file path",
    )
    replay_cmd.add_argument(
        "--policy", metavar="FILE", required=True, help="the candidate policy YAML"
    )
    _window(replay_cmd)
    replay_cmd.add_argument(
        "--app",
        metavar="MODULE:FACTORY",
        default=DEFAULT_APP,
        help=f"the app whose agent cards recipients and senders have (default: {DEFAULT_APP}); "
        "built with bus=memory:// and audit=memory://, nothing is started",
    )
    replay_cmd.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="replay at most N decisions (the first in the window, in log order)",
    )
    replay_cmd.add_argument(
        "--format", choices=["text", "json"], default="text", help="text (default) or json"
    )
    replay_cmd.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown on stderr only when stderr is a terminal)",
    )
    shadow_cmd = policy_cmds.add_parser(
        "shadow-report",
        help="summarise shadow records: what a shadowed candidate would have changed live",
        description=SHADOW_DESCRIPTION,
        epilog=SHADOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shadow_cmd.add_argument(
        "--audit",
        metavar="URL",
        required=True,
        help="the audit log: a SQLAlchemy URL or a SQLite file path",
    )
    shadow_cmd.add_argument(
        "--policy",
        metavar="FILE",
        help="report only this candidate policy (matched by sha256); default: every candidate",
    )
    _window(shadow_cmd)
    shadow_cmd.add_argument(
        "--format", choices=["text", "json"], default="text", help="text (default) or json"
    )


def _window(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--since",
        type=iso_time,
        metavar="ISO",
        help="only records at or after this time (ISO 8601; UTC without an offset)",
    )
    cmd.add_argument("--until", type=iso_time, metavar="ISO", help="only records before this time")
