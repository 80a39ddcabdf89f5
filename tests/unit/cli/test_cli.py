"""The command line: the demo job, audit verify, policy hash, and errors without tracebacks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from govbus.cli import main

ROOT = Path(__file__).resolve().parents[3]


def test_run_shows_every_outcome_and_verifies_the_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`govbus run`: allowed, denied (naming the check), degraded and partial rows; exit 0."""
    db = tmp_path / "audit.db"
    assert main(["run", "--audit", f"sqlite:///{db}", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    outcomes = [(s["outcome"], s["as_expected"]) for s in out["steps"]]
    assert all(ok for _, ok in outcomes), out["steps"]
    assert {o for o, _ in outcomes} == {"ok", "denied", "degraded", "partial"}
    details = " ".join(s["detail"] for s in out["steps"])
    assert "advisors-only" in details and "size" in details
    assert "portfolio_advisor timeout -> portfolio_snapshot" in details
    assert "anomaly_detector exception" in details
    assert out["audit"]["ok"] is True
    assert out["audit"]["records"] > 20


def test_run_table_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--audit", str(tmp_path / "a.db")]) == 0
    text = capsys.readouterr().out
    assert "audit chain verified" in text
    assert "denied" in text and "degraded" in text and "OK" in text


def test_audit_verify_detects_tampering(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "audit.db"
    assert main(["run", "--quiet", "--audit", str(db)]) == 0
    assert main(["audit", "verify", f"sqlite:///{db}"]) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_records SET outcome = 'allow' WHERE outcome = 'deny'")
    capsys.readouterr()
    assert main(["audit", "verify", f"sqlite:///{db}"]) == 1
    assert "BROKEN" in capsys.readouterr().out


def test_missing_policy_file_exits_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--policy", str(tmp_path / "nope.yaml"), "--audit", "memory://"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.yaml" in err and "Traceback" not in err


def test_broken_policy_reports_file_line_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: b, version: '1'}\n"
        "spec:\n  checks:\n    - id: x\n      use: lenght\n      max_bytes: 10\n"
    )
    assert main(["run", "--policy", str(bad), "--audit", "memory://"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:7:" in err and "length" in err


def test_unwritable_audit_location_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--audit", "sqlite:////proc/govbus/audit.db"]) == 2
    err = capsys.readouterr().err
    assert "/proc/govbus/audit.db" in err and "Traceback" not in err


def test_policy_hash_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(ROOT / "policies" / "default.yaml")
    assert main(["policy", "hash", policy]) == 0
    first = capsys.readouterr().out.split()[0]
    assert len(first) == 64
    assert main(["policy", "hash", policy]) == 0
    assert capsys.readouterr().out.split()[0] == first


def test_help_teaches_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "exit codes" in capsys.readouterr().out


def test_yaml_syntax_error_points_at_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: b, version: '1'\nspec: {}\n"
    )
    assert main(["policy", "hash", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err or f"{bad}:3:" in err
    assert "Traceback" not in err


def test_bad_bus_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--bus", "kafka://x", "--audit", "memory://"]) == 2
    assert "unknown bus URL" in capsys.readouterr().err
