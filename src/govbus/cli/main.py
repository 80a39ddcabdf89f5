"""``govbus`` entry point.

Exit codes: 0 success; 1 the command ran and found a failure (a broken audit chain, a demo step
with the wrong outcome); 2 bad usage or bad input (missing or invalid files, unknown options,
unreachable services); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from govbus import __version__
from govbus.errors import GovbusError

EPILOG = """\
exit codes:
  0  success
  1  the command ran and found a failure (broken audit chain, unexpected demo outcome)
  2  bad usage or bad input (missing or invalid file, unknown check kind, bad URL)
  130 interrupted

examples:
  govbus run                               the example pipeline on embedded defaults
  govbus run --policy policies/default.yaml --audit sqlite:///audit.db
  govbus audit verify sqlite:///.govbus/audit.db
  govbus policy hash policies/default.yaml
  govbus policy test policies/ --min-coverage 100
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govbus",
        description="govbus: a governed message bus for multi-agent AI systems.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"govbus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="run the example advisory pipeline end to end and verify the audit chain",
        description=(
            "Run the retail-banking advisory assistant in-process: send a scripted series of\n"
            "requests (ordinary ones, one denied by RBAC, one oversized, one where the advisor\n"
            "times out and its fallback answers, one where an agent raises), print what\n"
            "happened to each, then verify the audit chain. Exit 1 if any request ends\n"
            "differently than scripted or the chain does not verify."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    run.add_argument("--bus", default="memory://", help="bus URL (default: memory://)")
    run.add_argument(
        "--audit",
        default="sqlite:///.govbus/audit.db",
        metavar="URL",
        help="audit store: a SQLAlchemy URL or a SQLite file path "
        "(default: sqlite:///.govbus/audit.db)",
    )
    run.add_argument(
        "--policy", metavar="FILE", help="policy YAML (default: the bundled policies/default.yaml)"
    )
    run.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="table for people (default), json for machines",
    )
    run.add_argument("--quiet", action="store_true", help="print only the summary line")
    run.add_argument(
        "--strict",
        action="store_true",
        help="refuse to run unless the policy's sha256 has an approval record "
        "(governance/approvals.yaml)",
    )

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            from govbus.cli.run import run_demo

            return asyncio.run(
                run_demo(
                    bus=args.bus,
                    audit=args.audit,
                    policy=args.policy,
                    output=args.format,
                    quiet=args.quiet,
                    strict=args.strict,
                )
            )
        if args.command == "audit":
            from govbus.cli.audit import verify

            return verify(args.url, output=args.format)
        if args.command == "policy":
            from govbus.cli.policy import (
                policy_diff,
                policy_explain,
                policy_hash,
                policy_lint,
                policy_test,
            )

            if args.policy_command == "test":
                return policy_test(args.path, min_coverage=args.min_coverage, output=args.format)
            if args.policy_command == "lint":
                return policy_lint(args.file, output=args.format)
            if args.policy_command == "explain":
                return policy_explain(args.file, output=args.format, approvals=args.approvals)
            if args.policy_command == "diff":
                return policy_diff(args.old, args.new, cases=args.cases, output=args.format)
            return policy_hash(args.file)
    except GovbusError as exc:
        print(f"govbus: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("govbus: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command!r}")  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
