"""`govbus drill run` and `govbus dlq list|show|replay|drop` from the command line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from govbus.cli import main

ROOT = Path(__file__).resolve().parents[3]
DRILL = str(ROOT / "drills" / "agent_exception.yaml")


def test_drill_run_passes_and_prints_evidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "run", DRILL]) == 0
    captured = capsys.readouterr()
    assert "agent-exception" in captured.out and "pass" in captured.out
    assert "fallback exceptionx4" in captured.out and "dlq 4" in captured.out
    assert "drills: all 1 passed" in captured.out
    assert "pass  agent-exception" in captured.err  # progress, one line per drill


def test_drill_run_fails_with_the_mechanism_switched_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["drill", "run", DRILL, "--disable", "fallback", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "FAIL agent-exception" in out
    assert "fallback_fired: expected exception, got False" in out
    assert "with fallback switched off" in out


def test_drill_run_json_and_junit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "run", DRILL, "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    (drill,) = document["drills"]
    assert document["passed"] is True and drill["faults"] == ["agent_exception"]
    assert drill["evidence"]["dead_letters"] == 4
    assert main(["drill", "run", DRILL, "--format", "junit", "--disable", "fallback"]) == 1
    suite = ET.fromstring(capsys.readouterr().out)
    assert suite.get("failures") == "1"
    assert suite.find("testcase/failure") is not None


def test_drill_run_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "run", str(tmp_path / "missing.yaml")]) == 2
    assert "no such drill file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: govbus/v1\nkind: Drill\nmetadata: {name: x}\nspec: {}\n")
    assert main(["drill", "run", str(broken), "--no-progress"]) == 1  # reported as a failure
    assert "spec.proves: Field required" in capsys.readouterr().out


def test_drill_schema_prints_the_shipped_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drill", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "govbus drill file"


def test_dlq_list_show_replay_drop_after_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = f"sqlite:///{tmp_path}/audit.db"
    dlq = f"sqlite:///{tmp_path}/dlq.db"  # where the demo's app keeps them: beside the audit
    assert main(["run", "--audit", audit, "--quiet"]) == 0
    capsys.readouterr()

    assert main(["dlq", "list", "--dlq", dlq, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_agent = {e["agent"]: e for e in listed["entries"]}
    assert set(by_agent) == {"portfolio_advisor", "anomaly_detector"}
    assert by_agent["portfolio_advisor"]["cause"].startswith("timeout: ")
    assert by_agent["anomaly_detector"]["cause"].startswith("exception: ")

    assert main(["dlq", "list", "--dlq", dlq]) == 0
    assert "2 dead letter(s)" in capsys.readouterr().out

    advisor = by_agent["portfolio_advisor"]["id"]
    assert main(["dlq", "show", advisor[:-6], "--dlq", dlq]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["message"]["payload"]["account"] == "A-300"

    # A-300's market data is still too slow: the replay is governed, times out again and the
    # snapshot answers (degraded, exit 0); the agent gave up again, so a new entry holds it.
    assert main(["dlq", "replay", advisor, "--dlq", dlq, "--audit", audit, "--by", "ops"]) == 0
    assert "degraded (fallback, cause timeout)" in capsys.readouterr().out
    assert main(["dlq", "list", "--dlq", dlq, "--format", "json"]) == 0
    after = json.loads(capsys.readouterr().out)["entries"]
    assert advisor not in {e["id"] for e in after} and len(after) == 2

    # The anomaly detector has no fallback: its replay fails again (exit 1).
    anomaly = by_agent["anomaly_detector"]["id"]
    assert main(["dlq", "replay", anomaly, "--dlq", dlq, "--audit", audit]) == 1
    assert "failed (exception)" in capsys.readouterr().out

    assert main(["dlq", "list", "--dlq", dlq, "--format", "json"]) == 0
    remaining = [e["id"] for e in json.loads(capsys.readouterr().out)["entries"]]
    assert anomaly not in remaining and len(remaining) == 2
    assert main(["dlq", "drop", *remaining, "--dlq", dlq]) == 0
    assert main(["dlq", "list", "--dlq", dlq]) == 0
    out = capsys.readouterr().out
    assert out.count("dropped") == 2 and "no dead letters" in out
    # Replays were audited into the same, still verifiable, chain.
    assert main(["audit", "verify", audit]) == 0


def test_dlq_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dlq = f"sqlite:///{tmp_path}/dlq.db"
    assert main(["dlq", "show", "0123456789", "--dlq", dlq]) == 2
    assert "no dead letter" in capsys.readouterr().err.lower()
    assert main(["dlq", "replay", "--dlq", dlq]) == 2
    assert "needs entry ids or --all" in capsys.readouterr().err
    assert main(["dlq", "list", "--dlq", dlq]) == 0
    assert "no dead letters" in capsys.readouterr().out
