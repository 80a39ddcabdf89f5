"""The command line: the demo job, audit verify, policy hash, and errors without tracebacks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from govbus.cli import main
from govbus.policy.cases import load_cases
from tests.support import copy_default_policy

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


def test_policy_lint_default_policy_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """`govbus policy lint` on the shipped policy: no errors, exit 0, a summary line."""
    assert main(["policy", "lint", str(ROOT / "policies" / "default.yaml")]) == 0
    out = capsys.readouterr().out
    assert "error:" not in out
    assert out.splitlines()[-1].startswith("1 file, ")


def test_policy_lint_clean_file_says_0_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: g, version: '1'}\n"
        "spec:\n  checks:\n    - id: x\n      use: length\n      max_bytes: 10\n"
    )
    assert main(["policy", "lint", str(good)]) == 0
    assert capsys.readouterr().out == "1 file, 0 findings\n"


def _broken(tmp_path: Path) -> Path:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: b, version: '1'}\n"
        "spec:\n  checks:\n    - id: x\n      use: lenght\n      max_bytes: 10\n"
    )
    return bad


def test_policy_lint_broken_file_exits_1_with_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _broken(tmp_path)
    assert main(["policy", "lint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}:7:12: error: unknown_kind: " in out and "'length'" in out


def test_policy_lint_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", "/nonexistent/p.yaml"]) == 2
    assert "policy file not found" in capsys.readouterr().err


def test_policy_lint_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _broken(tmp_path)
    assert main(["policy", "lint", "--format", "json", str(bad)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == 1 and out["files"] == 1
    [finding] = out["findings"]
    assert finding == {
        "file": str(bad),
        "line": 7,
        "column": 12,
        "severity": "error",
        "code": "unknown_kind",
        "message": finding["message"],
    }


def test_policy_lint_sarif_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _broken(tmp_path)
    assert main(["policy", "lint", "--format", "sarif", str(bad)]) == 1
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0"
    [run] = log["runs"]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["unknown_kind"]
    [result] = run["results"]
    assert result["ruleId"] == "unknown_kind" and result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == bad.as_posix()
    assert location["region"] == {"startLine": 7, "startColumn": 12}


def test_policy_explain_markdown_and_html(capsys: pytest.CaptureFixture[str]) -> None:
    policy = str(ROOT / "policies" / "default.yaml")
    approvals = str(ROOT / "governance" / "approvals.yaml")
    assert main(["policy", "explain", policy, "--approvals", approvals]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Policy retail-banking")
    assert "advisors-only" in md and "approved by Chief Risk Officer" in md
    assert main(["policy", "explain", "--format", "html", policy]) == 0
    page = capsys.readouterr().out
    assert page.startswith("<!DOCTYPE html>") and "advisors-only" in page
    assert "NOT APPROVED" in page


def test_policy_explain_broken_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _broken(tmp_path)
    assert main(["policy", "explain", str(bad)]) == 2
    assert f"{bad}:7:12:" in capsys.readouterr().err


def test_policy_diff_with_cases_shows_a_flipped_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = ROOT / "policies" / "default.yaml"
    text = old.read_text().replace("max_bytes: 65536", "max_bytes: 32768")
    text = text.replace(
        "    - id: trace-required\n      use: required_metadata\n      keys: [traceparent]\n", ""
    )
    new = copy_default_policy(tmp_path, text, "new.yaml")
    cases = str(ROOT / "policies" / "default.cases.yaml")
    assert main(["policy", "diff", str(old), str(new), "--cases", cases]) == 0
    out = capsys.readouterr().out
    assert "check removed: trace-required" in out
    assert "check size: max_bytes: 65536 → 32768" in out
    assert "deny by trace-required → allow" in out
    assert main(["policy", "diff", "--format", "json", str(old), str(new)]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert {c["kind"] for c in changes} == {"check_removed", "param"}


def test_policy_diff_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    old = str(ROOT / "policies" / "default.yaml")
    assert main(["policy", "diff", old, "/nonexistent/new.yaml"]) == 2
    assert "policy file not found" in capsys.readouterr().err


def test_policy_test_passes_the_repository_cases(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", str(ROOT / "policies"), "--min-coverage", "100"]) == 0
    out = capsys.readouterr().out
    assert "coverage: 100%" in out
    count = len(load_cases(ROOT / "policies" / "default.cases.yaml"))
    assert f"{count} of {count} cases passed" in out


def test_policy_test_fails_a_wrong_case_and_low_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_default_policy(tmp_path, name="p.yaml")
    cases = (ROOT / "policies" / "default.cases.yaml").read_text()
    # Flip one case's expectation, and keep only the first three cases.
    head = cases.split("  - note: a customer may not ask")[0]
    (tmp_path / "p.cases.yaml").write_text(head.replace("want: allow", "want: deny", 1))
    assert main(["policy", "test", str(tmp_path / "p.yaml"), "--min-coverage", "100"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "wanted deny, got allow" in out
    assert "advisors-only: never seen to deny" in out
    assert main(["policy", "test", str(tmp_path / "p.yaml"), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["files"][0]["coverage_percent"] < 100


def test_policy_test_missing_cases_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "test", str(tmp_path)]) == 2
    assert "no *.cases.yaml" in capsys.readouterr().err


def test_run_strict_refuses_an_unapproved_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "policies" / "default.yaml").read_text().replace("65536", "60000")
    changed = copy_default_policy(tmp_path, text, "policy.yaml")
    code = main(["run", "--strict", "--policy", str(changed), "--audit", "memory://"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no approval record" in err and "Traceback" not in err
    assert main(["run", "--strict", "--quiet", "--audit", "memory://"]) == 0
