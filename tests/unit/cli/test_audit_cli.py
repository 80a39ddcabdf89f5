"""``govbus audit verify|tail|export|prune``: output, exit codes, errors without tracebacks."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import govbus.cli.audit as audit_cli
from govbus.cli import main
from tests.unit.audit.chains import HOUR, T0, event, seqs, write_chain

CaptureFixture = pytest.CaptureFixture[str]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write_chain(path, "a", 10)
    write_chain(path, "b", 3)
    return path


def run(capsys: CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["verify", "tail", "export", "prune"])
def test_every_action_has_help_that_teaches(action: str, capsys: CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", action, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert f"govbus audit {action}" in text.split("examples:")[1]
    assert len(text.split("examples:")[0]) > 600  # a description, not just the options


def test_the_audit_help_lists_every_action(capsys: CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = capsys.readouterr().out
    for action in ("verify", "tail", "export", "prune"):
        assert action in text


# -- verify -----------------------------------------------------------------------------------


def test_verify_json_reports_chains_and_pruned(db: Path, capsys: CaptureFixture) -> None:
    code, out, _ = run(capsys, "audit", "verify", str(db), "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["chains"] == {"a": 10, "b": 3}
    assert report["pruned"] == {}


def test_verify_names_the_broken_record_and_exits_1(db: Path, capsys: CaptureFixture) -> None:
    with sqlite3.connect(db) as con:
        con.execute("UPDATE audit_records SET outcome = 'deny' WHERE node = 'a' AND seq = 4")
    con.close()
    code, out, _ = run(capsys, "audit", "verify", str(db))
    assert code == 1
    assert "BROKEN at record 4 of chain 'a'" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "verify", "/nonexistent/dir/audit.db"], "no audit database at"),
        (["audit", "verify", "postgresql://u@host:notaport/db"], "cannot parse audit database URL"),
        (["audit", "tail", "/nonexistent/audit.db"], "no audit database at"),
        (["audit", "export", "/nonexistent/audit.db"], "no audit database at"),
        (["audit", "verify", "--export", "/nonexistent/x.jsonl"], "cannot read export file"),
    ],
)
def test_bad_input_exits_2_naming_what_and_where(
    argv: list[str], message: str, capsys: CaptureFixture
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_verify_takes_a_database_or_an_export_not_both(db: Path, capsys: CaptureFixture) -> None:
    code, _, err = run(capsys, "audit", "verify", str(db), "--export", "x.jsonl")
    assert code == 2
    assert "not both" in err


def test_the_progress_bar_is_shown_only_on_a_terminal(
    db: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    real = audit_cli.verify_url

    def spy(url: str, **kwargs: Any) -> Any:
        seen.append(kwargs.get("progress"))
        return real(url, **kwargs)

    monkeypatch.setattr(audit_cli, "verify_url", spy)
    assert main(["audit", "verify", str(db)]) == 0  # stderr is captured: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(["audit", "verify", str(db)]) == 0
    assert main(["audit", "verify", str(db), "--no-progress"]) == 0
    assert seen[0] is None and callable(seen[1]) and seen[2] is None
    assert "verified" in capsys.readouterr().out


# -- tail -------------------------------------------------------------------------------------


def test_tail_prints_the_newest_records_oldest_first(db: Path, capsys: CaptureFixture) -> None:
    code, out, _ = run(capsys, "audit", "tail", str(db), "-n", "3")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.startswith("TIME")
    assert [line.split()[1] for line in lines] == ["a#8", "a#9", "a#10"]
    assert "planner -> advisor" in lines[1]


def test_tail_jsonl_has_every_field(db: Path, capsys: CaptureFixture) -> None:
    code, out, _ = run(capsys, "audit", "tail", str(db), "-n", "2", "--format", "jsonl")
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["node"], r["seq"]) for r in records] == [("a", 9), ("a", 10)]
    assert set(records[0]) >= {"prev_hash", "hash", "data", "policy_sha256"}


def test_tail_follow_prints_records_as_they_are_committed(db: Path, capsys: CaptureFixture) -> None:
    writes = iter([["b"], [], ["a", "b"]])

    def sleep(_: float) -> None:
        for node in next(writes):
            start = len(seqs(db, node))
            write_chain(db, node, [event(start, ts=T0 + (100 + start) * HOUR)])

    code = audit_cli.tail(str(db), lines=0, follow=True, output="jsonl", sleep=sleep, polls=3)
    assert code == 0
    out = capsys.readouterr().out
    assert [(r["node"], r["seq"]) for r in map(json.loads, out.splitlines())] == [
        ("b", 4),
        ("b", 5),
        ("a", 11),
    ]


def test_ctrl_c_stops_tail_follow_with_exit_130(
    db: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_cli.time, "sleep", interrupted)
    code, out, err = run(capsys, "audit", "tail", str(db), "--follow", "-n", "1")
    assert code == 130
    assert "a#10" in out
    assert "interrupted" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-n", "-1"], "must be zero or more"),
        (["--interval", "0"], "must be more than 0"),
        (["--format", "xml"], "invalid choice"),
    ],
)
def test_tail_rejects_bad_options(
    db: Path, argv: list[str], message: str, capsys: CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "tail", str(db), *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# -- export -----------------------------------------------------------------------------------


def test_export_to_a_file_then_verify_it(db: Path, tmp_path: Path, capsys: CaptureFixture) -> None:
    out = tmp_path / "audit.jsonl"
    code, stdout, err = run(capsys, "audit", "export", str(db), "--out", str(out))
    assert code == 0 and stdout == ""
    assert "exported 13 records from 2 chains" in err and "complete" in err
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    code, text, _ = run(capsys, "audit", "verify", "--export", str(out))
    assert code == 0
    assert "audit export verified: 13 records in 2 chains" in text


def test_export_csv_to_stdout_with_filters(db: Path, capsys: CaptureFixture) -> None:
    code, out, err = run(
        capsys, "audit", "export", str(db), "--format", "csv", "--kind", "decision",
        "--agent", "planner", "--since", "2026-01-01T02:00", "--until", "2026-01-01T08:00Z",
    )  # fmt: skip
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("node,seq,ts,")
    assert [r.split(",")[:2] for r in rows[1:]] == [["a", "3"], ["a", "5"], ["a", "7"], ["b", "3"]]
    assert "filtered" in err


def test_a_failed_export_leaves_nothing_behind(
    db: Path, tmp_path: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import govbus.audit.export as export_module
    from govbus.errors import AuditError

    def failing(url: str, out: io.BufferedIOBase, **kwargs: Any) -> Any:
        out.write(b'{"govbus_audit_export": 1}\n' * 1000)
        raise AuditError("cannot read audit database at x: the server went away")

    monkeypatch.setattr(export_module, "export_url", failing)
    target = tmp_path / "out" / "audit.jsonl"
    target.parent.mkdir()
    code, _, err = run(capsys, "audit", "export", str(db), "--out", str(target))
    assert code == 2
    assert "went away" in err
    assert list(target.parent.iterdir()) == []


def test_an_interrupted_export_leaves_nothing_behind(
    db: Path, tmp_path: Path, capsys: CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import govbus.audit.export as export_module

    def interrupted(url: str, out: io.BufferedIOBase, **kwargs: Any) -> Any:
        out.write(b"partial\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "export_url", interrupted)
    code, _, _ = run(capsys, "audit", "export", str(db), "--out", str(tmp_path / "x.jsonl"))
    assert code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.db"]


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["--format", "xml"], "invalid choice: 'xml'", 2),
        (["--since", "yesterday"], "not an ISO 8601 date", 2),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "the window is empty", 2),
        (["--out", "/nonexistent/dir/x.jsonl"], "does not exist", 2),
    ],
)
def test_export_bad_input_exits_2(
    db: Path, argv: list[str], message: str, code: int, capsys: CaptureFixture
) -> None:
    try:
        got = main(["audit", "export", str(db), *argv])
    except SystemExit as exit_info:  # argparse
        got = int(exit_info.code or 0)
    assert got == code
    assert message in capsys.readouterr().err


# -- prune ------------------------------------------------------------------------------------


def test_prune_yes_deletes_and_the_store_still_verifies(db: Path, capsys: CaptureFixture) -> None:
    code, out, _ = run(
        capsys, "audit", "prune", str(db), "--before", "2026-01-01T04:00", "--yes", "--by", "ops"
    )
    assert code == 0
    assert "pruned chain 'a': 4 records, up to record 4" in out
    assert "pruned chain 'b': 3 records" in out and "no record left" in out
    assert seqs(db, "a") == [5, 6, 7, 8, 9, 10]
    code, out, _ = run(capsys, "audit", "verify", str(db))
    assert code == 0
    assert "2 chains start at a checkpoint (7 records pruned)" in out


def test_prune_dry_run_changes_nothing(db: Path, capsys: CaptureFixture) -> None:
    code, out, _ = run(
        capsys, "audit", "prune", str(db), "--before", "2026-01-01T04:00", "--dry-run",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    report = json.loads(out)
    assert report["dry_run"] is True and report["pruned"] == 7
    assert seqs(db, "a") == list(range(1, 11))


def test_prune_without_yes_and_without_a_terminal_refuses(db: Path, capsys: CaptureFixture) -> None:
    code, _, err = run(capsys, "audit", "prune", str(db), "--before", "2026-01-01T04:00")
    assert code == 2
    assert "--yes" in err
    assert seqs(db, "a") == list(range(1, 11))


@pytest.mark.parametrize(
    ("answer", "kept"), [("y", [5, 6, 7, 8, 9, 10]), ("n", list(range(1, 11)))]
)
def test_prune_asks_on_a_terminal(
    db: Path, answer: str, kept: list[int], capsys: CaptureFixture
) -> None:
    questions: list[str] = []

    def ask(question: str) -> str:
        questions.append(question)
        return answer

    before = datetime(2026, 1, 1, 4, tzinfo=UTC)
    code = audit_cli.prune(str(db), before=before, ask=ask, interactive=True)
    assert code == 0
    assert questions and "Delete these 7 records" in questions[0]
    assert seqs(db, "a") == kept
    assert "would prune chain 'a': 4 records" in capsys.readouterr().out


def test_prune_exits_1_when_a_chain_is_left_alone(db: Path, capsys: CaptureFixture) -> None:
    with sqlite3.connect(db) as con:
        con.execute("UPDATE audit_records SET outcome = 'x' WHERE node = 'b' AND seq = 2")
    con.close()
    code, out, _ = run(capsys, "audit", "prune", str(db), "--before", "2026-01-01T04:00", "--yes")
    assert code == 1
    assert "left alone chain 'b'" in out
    assert seqs(db, "b") == [1, 2, 3]
    assert seqs(db, "a") == [5, 6, 7, 8, 9, 10]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--before", "2999-01-01", "--yes"], "in the future"),
        (["--before", "soon", "--yes"], "not an ISO 8601 date"),
        (["--yes"], "--before"),
        (["--before", "2026-01-01", "--batch", "0"], "at least 1"),
    ],
)
def test_prune_bad_input_exits_2(
    db: Path, argv: list[str], message: str, capsys: CaptureFixture
) -> None:
    try:
        code = main(["audit", "prune", str(db), *argv])
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err


def test_prune_requires_a_url(capsys: CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "prune", "--before", "2026-01-01", "--yes"])
    assert exit_info.value.code == 2
    assert "URL" in capsys.readouterr().err


def test_broken_stdout_pipe_ends_tail_quietly(
    db: Path, monkeypatch: pytest.MonkeyPatch, capsys: CaptureFixture
) -> None:
    def broken(lines: list[str]) -> None:
        raise BrokenPipeError

    monkeypatch.setattr(audit_cli, "_emit", broken)
    monkeypatch.setattr(audit_cli, "_silence_stdout", lambda: None)
    assert main(["audit", "tail", str(db)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert os.path.exists(db)
