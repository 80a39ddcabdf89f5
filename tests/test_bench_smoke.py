"""The benchmark still runs and reports every figure (a smoke test, not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES, skip_or_fail

ROOT = Path(__file__).resolve().parents[1]


def test_dispatch_benchmark_runs_and_reports_json(tmp_path: Path) -> None:
    out = tmp_path / "dispatch.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "dispatch.py"), "-n", "300", "--rounds", "1",
         "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == json.loads(out.read_text())
    for key in ("raw_asyncio_msgs_per_s", "bus_msgs_per_s", "governed_msgs_per_s",
                "hop_latency_us_p50", "hop_latency_us_p99"):  # fmt: skip
        assert result[key] > 0, key
    assert result["governed_audit_verified"] is True


def test_policy_benchmark_runs_and_reports_json(tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "policy.py"), "--quick", "--no-presidio",
         "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == json.loads(out.read_text())
    assert set(result["composite"]) == {"300B", "4KB", "64KB"}
    for row in result["composite"].values():
        assert 0 < row["p50_us"] <= row["p99_us"]
    assert set(result["per_check"]["300B"]) == set(result["per_check"]["4KB"])
    assert len(result["per_check"]["300B"]) == result["policy"]["checks"] == 15
    accuracy = result["pii_accuracy"]
    if "skipped" not in accuracy:  # the shared corpora are present on development machines
        assert accuracy["govbus"]["credit_card"]["labelled"] > 0


@pytest.mark.nats
def test_nats_benchmark_runs_and_reports_json(tmp_path: Path) -> None:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
    except OSError:
        skip_or_fail("NATS is not reachable at 127.0.0.1:4222")
    out = tmp_path / "nats.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "nats.py"), "-n", "200", "--rounds", "1",
         "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == json.loads(out.read_text())
    assert result["raw_msgs_per_s"] > 0 and result["governed_msgs_per_s"] > 0


def test_audit_benchmark_runs_and_reports_json(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "audit.py"), "-n", "400", "--rounds", "1",
         "--verify-records", "2000", "--concurrency", "8", "--json", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == json.loads(out.read_text())
    stores = ["sqlite"]
    if "postgresql_skipped" not in result:
        stores.append("postgresql")
    elif REQUIRE_SERVICES:
        pytest.fail(f"PostgreSQL skipped: {result['postgresql_skipped']}")
    for store in stores:
        for writer in ("thread", "process"):
            for durability in ("batch", "sync"):
                assert result[f"{store}_{writer}_{durability}_events_per_s"] > 0
        assert result[f"{store}_verify_records_per_s"] > 0
    assert result["sqlite_verify_records"] == 2000
    assert result["sqlite_verify_serial_records_per_s"] > 0
    assert isinstance(result["goal_sqlite_batch_met"], bool)
