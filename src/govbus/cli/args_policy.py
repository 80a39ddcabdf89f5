"""The ``govbus policy`` command line: its parser (kept apart from the commands so building the
parser imports nothing heavy)."""

from __future__ import annotations

import argparse
from typing import Any


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
