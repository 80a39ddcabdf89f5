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
                )
            )
        if args.command == "audit":
            from govbus.cli.audit import verify

            return verify(args.url, output=args.format)
        if args.command == "policy":
            from govbus.cli.policy import policy_hash

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
