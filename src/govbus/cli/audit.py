"""``govbus audit ...`` commands: verify, tail, export, prune."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from govbus.audit import VerifyReport, verify_url
from govbus.cli.args_audit import DEFAULT_AUDIT_URL
from govbus.errors import AuditError, ConfigError

Progress = Callable[[int, int | None], None]


def run_audit_command(args: argparse.Namespace) -> int:
    """Run the ``govbus audit`` action ``args`` names (see :mod:`govbus.cli.args_audit`)."""
    action = args.audit_command
    if action == "tail":
        return tail(
            args.url or DEFAULT_AUDIT_URL,
            lines=args.lines,
            follow=args.follow,
            output=args.format,
            interval=args.interval,
        )
    if action == "export":
        return export(
            args.url or DEFAULT_AUDIT_URL,
            output=args.format,
            out=args.out,
            since=args.since,
            until=args.until,
            msg_type=args.type,
            agent=args.agent,
            kind=args.kind,
            progress=not args.no_progress,
        )
    if action == "prune":
        return prune(
            args.url,
            before=args.before,
            yes=args.yes,
            dry_run=args.dry_run,
            by=args.by,
            node=args.node,
            batch=args.batch,
            output=args.format,
        )
    if args.export is not None:
        if args.url is not None:
            raise ConfigError("give either a database URL or --export FILE, not both")
        return verify_export_file(args.export, output=args.format, progress=not args.no_progress)
    return verify(
        args.url or DEFAULT_AUDIT_URL,
        output=args.format,
        progress=not args.no_progress,
        workers=args.workers,
    )


# --------------------------------------------------------------------------------------------
# verify


def verify(
    url: str, *, output: str = "table", progress: bool = False, workers: int | None = None
) -> int:
    """``govbus audit verify [URL]``: exit 0 when every chain verifies, else 1."""
    with _progress_bar("verifying audit records", enabled=progress) as advance:
        report = verify_url(url, progress=advance, workers=workers)
    if output == "json":
        print(json.dumps(report_json(report)))
    else:
        print_report(Console(), url, report)
    return 0 if report.ok else 1


def verify_export_file(path: str, *, output: str = "table", progress: bool = False) -> int:
    """``govbus audit verify --export FILE``: exit 0 when the file verifies, else 1."""
    from govbus.audit.export import verify_export

    with _progress_bar("verifying export", enabled=progress) as advance:
        checked = verify_export(path, progress=advance)
    report = checked.report
    if output == "json":
        print(
            json.dumps(
                {
                    **report_json(report),
                    "export": {
                        "file": path,
                        "format": checked.format,
                        "complete": checked.complete,
                        "notes": checked.notes,
                    },
                }
            )
        )
    else:
        console = Console()
        print_report(console, path, report, what="export")
        for note in checked.notes:
            console.print(f"[yellow]note[/yellow]: {note}", soft_wrap=True)
    return 0 if report.ok else 1


def report_json(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "records": report.records,
        "chains": report.chains,
        "pruned": report.pruned,
        "node": report.node,
        "seq": report.seq,
        "problem": report.problem,
    }


def print_report(console: Console, url: str, report: VerifyReport, *, what: str = "chain") -> None:
    chains = len(report.chains)
    pruned = sum(report.pruned.values())
    extra = ""
    if report.pruned:
        starts = len(report.pruned)
        extra = (
            f"; {starts} chain{'s' if starts != 1 else ''} start at a checkpoint "
            f"({pruned} records pruned)"
        )
    if report.ok:
        console.print(
            f"[green]audit {what} verified[/green]: {report.records} records in {chains} "
            f"chain{'s' if chains != 1 else ''}{extra} ({url})",
            soft_wrap=True,
        )
    else:
        where = (
            f"at record {report.seq} of chain {report.node!r}"
            if report.seq is not None
            else f"in chain {report.node!r}"
        )
        console.print(
            f"[red]audit {what} BROKEN[/red] {where}: {report.problem} ({url})", soft_wrap=True
        )


@contextlib.contextmanager
def _progress_bar(label: str, *, enabled: bool) -> Iterator[Progress | None]:
    """A transient progress bar on stderr when it is a terminal; yields ``advance(done, total)``
    (None when there is no bar)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


# --------------------------------------------------------------------------------------------
# tail


def tail(
    url: str,
    *,
    lines: int = 20,
    follow: bool = False,
    output: str = "table",
    interval: float = 1.0,
    sleep: Callable[[float], None] | None = None,
    polls: int | None = None,
) -> int:
    """``govbus audit tail``: the newest records, then (``follow``) new ones until Ctrl-C.

    Args:
        sleep: how to wait between polls (default ``time.sleep``).
        polls: stop after this many polls (tests); None polls until interrupted.
    """
    from govbus.audit.tail import AuditTail

    reader = AuditTail(url)
    show = _jsonl_line if output == "jsonl" else _table_line
    try:
        rows = reader.last(lines)
        if output == "table":
            _emit([_TABLE_HEADER])
        _emit([show(row) for row in rows])
        done = 0
        while follow and (polls is None or done < polls):
            (sleep or time.sleep)(interval)
            _emit([show(row) for row in reader.poll()])
            done += 1
    except BrokenPipeError:  # | head: the reader has seen enough
        _silence_stdout()
    finally:
        reader.close()
    return 0


_TABLE_HEADER = (
    f"{'TIME':<27}  {'CHAIN#SEQ':<24}  {'KIND':<9}  {'OUTCOME':<11}  {'TYPE':<20}  "
    "FROM -> TO  MESSAGE"
)


def _table_line(row: Sequence[Any]) -> str:
    node, seq, ts, kind, outcome, message_id, _cid, msg_type, sender, recipient = row[:10]
    parties = f"{sender or '-'} -> {recipient or '-'}"
    return (
        f"{ts!s:<27}  {f'{node}#{seq}':<24}  {kind!s:<9}  {outcome!s:<11}  "
        f"{msg_type or '-':<20}  {parties}  {message_id or '-'}"
    )


def _jsonl_line(row: Sequence[Any]) -> str:
    from govbus.audit.export import record_json

    return record_json(row).decode()


def _emit(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; with the pipe gone that would print a second error.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# --------------------------------------------------------------------------------------------
# export


def export(
    url: str,
    *,
    output: str = "jsonl",
    out: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    msg_type: str | None = None,
    agent: str | None = None,
    kind: str | None = None,
    progress: bool = False,
) -> int:
    """``govbus audit export``: records to ``out`` (atomically) or stdout; exit 0."""
    from govbus.audit.export import ExportFilter, ExportFormat, export_url

    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}: "
            "the window is empty"
        )
    filters = ExportFilter(since=since, until=until, msg_type=msg_type, agent=agent, kind=kind)
    fmt: ExportFormat = "csv" if output == "csv" else "jsonl"
    with _progress_bar("exporting audit records", enabled=progress) as advance:
        if out is None:
            try:
                summary = export_url(url, sys.stdout.buffer, format=fmt, filters=filters,
                                     progress=advance)  # fmt: skip
                sys.stdout.buffer.flush()
            except BrokenPipeError:
                _silence_stdout()
                print("govbus: export stopped: the output was closed", file=sys.stderr)
                return 1
        else:
            with _atomic_file(Path(out)) as handle:
                summary = export_url(url, handle, format=fmt, filters=filters, progress=advance)
    scope = "complete" if summary.complete else "filtered"
    target = out if out is not None else "stdout"
    print(
        f"exported {summary.records} records from {summary.chains} chains of {summary.where} "
        f"to {target} ({summary.format}, {scope})",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file that appears at ``path`` only once everything was written (temp file + rename)."""
    directory = path.parent
    if not directory.is_dir():
        raise ConfigError(f"cannot write {path}: the directory {directory} does not exist")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise AuditError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# --------------------------------------------------------------------------------------------
# prune


def prune(
    url: str,
    *,
    before: datetime,
    yes: bool = False,
    dry_run: bool = False,
    by: str | None = None,
    node: str | None = None,
    batch: int = 50_000,
    output: str = "table",
    ask: Callable[[str], str] = input,
    interactive: bool | None = None,
) -> int:
    """``govbus audit prune``: exit 0 when done, 1 if a chain was left alone (broken).

    Args:
        ask: reads the answer to the confirmation question (tests).
        interactive: whether there is someone to ask; default: stdin is a terminal.
    """
    from govbus.audit.prune import prune_url

    options: dict[str, Any] = {"before": before, "by": by, "node": node, "batch": batch}
    if not dry_run and not yes:
        if not (interactive if interactive is not None else sys.stdin.isatty()):
            raise ConfigError(
                "prune deletes records: pass --yes to confirm (or --dry-run to see what it "
                "would delete); stdin is not a terminal to ask on"
            )
        plan = prune_url(url, dry_run=True, **options)
        _print_prune(plan, output="table")
        if plan.pruned == 0:
            return 0 if plan.ok else 1
        answer = ask(f"Delete these {plan.pruned} records from {plan.where}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 0
    report = prune_url(url, dry_run=dry_run, **options)
    _print_prune(report, output=output)
    return 0 if report.ok else 1


def _print_prune(report: Any, *, output: str) -> None:
    if output == "json":
        print(
            json.dumps(
                {
                    "where": report.where,
                    "before": report.before,
                    "dry_run": report.dry_run,
                    "ok": report.ok,
                    "pruned": report.pruned,
                    "audit_node": report.audit_node,
                    "chains": [
                        {
                            "node": c.node,
                            "pruned": c.pruned,
                            "pruned_to": c.pruned_to,
                            "first_kept": c.first_kept,
                            "last_pruned_ts": c.last_pruned_ts,
                            "problem": c.problem,
                            "audit_seqs": list(c.audit_seqs),
                        }
                        for c in report.chains
                    ],
                }
            )
        )
        return
    console = Console()
    verb = "would prune" if report.dry_run else "pruned"
    for chain in report.chains:
        if chain.problem is not None:
            console.print(
                f"[red]left alone[/red] chain {chain.node!r}: {chain.problem}", soft_wrap=True
            )
        elif chain.pruned:
            kept = (
                f"first kept record {chain.first_kept}"
                if chain.first_kept is not None
                else "no record left"
            )
            console.print(
                f"{verb} chain {chain.node!r}: {chain.pruned} records, up to record "
                f"{chain.pruned_to} ({chain.last_pruned_ts}); {kept}",
                soft_wrap=True,
            )
    chains = sum(1 for c in report.chains if c.pruned)
    summary = (
        f"{verb} {report.pruned} records older than {report.before} from {chains} of "
        f"{len(report.chains)} chains ({report.where})"
    )
    if not report.dry_run and report.pruned:
        steps = sum(len(c.audit_seqs) for c in report.chains)
        summary += f"; {steps} audit_prune records in chain {report.audit_node!r}"
    console.print(summary, soft_wrap=True)
