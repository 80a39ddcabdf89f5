"""``govbus serve`` (a real process: HTTP, the kill switch, SIGTERM draining and flushing the
audit) and ``govbus inventory`` (offline: json, md, csv)."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import govbus
from govbus.audit import verify_url
from govbus.cli.main import main

EXAMPLE_AGENTS = [
    "anomaly_detector", "forecaster", "intake", "portfolio_advisor", "portfolio_analyzer",
    "portfolio_snapshot", "recommender",
]  # fmt: skip

#: An App object (not a factory) for ``--app MODULE:APP``.
OBJECT_APP = govbus.App("object-app", audit="memory://")


@OBJECT_APP.agent("only", handles="only.*", owner="Tests", risk="critical")
async def only(msg: govbus.Message, ctx: govbus.Context) -> None:
    return None


@pytest.fixture
def no_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVBUS_INVENTORY_TOKEN", raising=False)
    monkeypatch.delenv("GOVBUS_ADMIN_TOKEN", raising=False)


def test_inventory_json_is_the_endpoint_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [a["name"] for a in doc["agents"]] == EXAMPLE_AGENTS
    assert doc["policy"]["approved"] is True and doc["policy"]["name"] == "retail-banking"
    advisor = next(a for a in doc["agents"] if a["name"] == "portfolio_advisor")
    assert advisor["fallback"] == "portfolio_snapshot" and advisor["risk"] == "high"
    assert advisor["model"] == {"provider": "scripted", "name": "advice-writer"}


def test_inventory_csv_has_one_row_per_agent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows] == EXAMPLE_AGENTS
    advisor = next(r for r in rows if r["name"] == "portfolio_advisor")
    assert (advisor["risk"], advisor["fallback"], advisor["model"]) == (
        "high", "portfolio_snapshot", "scripted/advice-writer"
    )  # fmt: skip
    assert advisor["policy_approved"] == "true" and advisor["status"] == "healthy"


def test_inventory_markdown_is_a_table_with_the_approval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["inventory", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# AI inventory: retail-advisory")
    assert "approved by Chief Risk Officer" in out
    assert sum(line.startswith("| portfolio_") for line in out.splitlines()) == 3


def test_inventory_of_an_app_object_and_of_an_unapproved_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["inventory", "--app", f"{__name__}:OBJECT_APP"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(a["name"], a["risk"]) for a in doc["agents"]] == [("only", "critical")]
    assert doc["policy"]["name"] == "unrestricted" and doc["policy"]["approved"] is False

    policy = tmp_path / "p.yaml"
    policy.write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: candidate, version: '9'}\n"
        "spec: {checks: []}\n"
    )
    assert main(["inventory", "--policy", str(policy), "--format", "md"]) == 0
    assert "**NOT APPROVED**" in capsys.readouterr().out


def test_inventory_of_a_missing_app_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "--app", "no_such_module:create_app"]) == 2
    assert "cannot import module 'no_such_module'" in capsys.readouterr().err


@pytest.mark.usefixtures("no_tokens")
def test_serve_refuses_to_start_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--audit", "memory://"]) == 2
    err = capsys.readouterr().err
    for needed in ("GOVBUS_INVENTORY_TOKEN", "GOVBUS_ADMIN_TOKEN", "--insecure-no-auth"):
        assert needed in err


@pytest.mark.usefixtures("no_tokens")
def test_serve_with_a_bad_tokens_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("ops: {token: short, scope: admin}\n")
    assert main(["serve", "--tokens", str(tokens), "--audit", "memory://"]) == 2
    assert "shorter than 16" in capsys.readouterr().err


def test_serve_reports_a_port_it_cannot_bind(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    monkeypatch.setenv("GOVBUS_INVENTORY_TOKEN", "r" * 20)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = str(taken.getsockname()[1])
        assert main(["serve", "--audit", "memory://", "--port", port]) == 2
    finally:
        taken.close()
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 60.0) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"govbus serve exited early: {''.join(seen)}")
        seen.append(line)
        if "listening on " in line:
            return line.split("listening on ", 1)[1].split()[0]
    raise AssertionError(f"govbus serve was not ready in {timeout}s: {''.join(seen)}")


def test_serve_answers_pauses_and_drains_on_sigterm_with_the_audit_flushed(
    tmp_path: Path,
) -> None:
    read, admin = "r" * 24, "a" * 24
    audit = f"sqlite:///{tmp_path}/audit.db"
    env = {**os.environ, "GOVBUS_INVENTORY_TOKEN": read, "GOVBUS_ADMIN_TOKEN": admin}
    proc = subprocess.Popen(
        [sys.executable, "-m", "govbus", "serve", "--port", "0", "--audit", audit],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = _wait_ready(proc)
        with httpx.Client(base_url=url, timeout=10.0) as http:
            assert http.get("/readyz").status_code == 200
            assert http.get("/v1/inventory").status_code == 401
            inventory = http.get("/v1/inventory", headers={"Authorization": f"Bearer {read}"})
            assert [a["name"] for a in inventory.json()["agents"]] == EXAMPLE_AGENTS
            paused = http.post(
                "/v1/agents/portfolio_advisor/pause",
                headers={"Authorization": f"Bearer {admin}"},
                json={"reason": "model drift"},
            )
            assert paused.status_code == 200 and paused.json()["status"] == "paused"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "drained and stopped" in err
    with sqlite3.connect(tmp_path / "audit.db") as db:
        admin_records = [
            (outcome, json.loads(data))
            for outcome, data in db.execute(
                "select outcome, data from audit_records where kind = 'admin' order by seq"
            )
        ]
    assert [o for o, _ in admin_records] == ["start", "pause", "stop"]  # the stop is flushed
    assert admin_records[1][1]["by"] == "admin-token"
    assert admin_records[1][1]["reason"] == "model drift"
    assert verify_url(audit).ok
