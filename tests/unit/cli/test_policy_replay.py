"""``govbus policy replay`` and ``govbus policy shadow-report`` on a SQLite audit log."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from govbus.audit import AuditEvent, SqlAuditStore
from govbus.cli import main
from govbus.policy import load_policy

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EMAIL = "jo.bloggs@example.com"

CANDIDATE = """\
apiVersion: govbus/v1
kind: Policy
metadata: {name: retail-banking, version: 2026.12.0-rc1}
spec:
  roles: [advisor, admin]
  checks:
    - id: advisors-only
      use: rbac
      rules:
        - types: ["portfolio.advise"]
          roles: [admin]
      default: allow
    - id: personal-data
      use: pii
"""


def decision(
    message_id: str,
    roles: list[str],
    *,
    ts: datetime = T0,
    storage: str = "hash",
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    data: dict[str, Any] = {
        "policy": "retail-banking",
        "policy_version": "2026.11.1",
        "checks": {"advisors-only": "allow", "personal-data": "allow"},
        "classification": "internal",
        "payload_storage": storage,
        "envelope": {
            "to": None,
            "actor": {"subject": "asha", "roles": roles, "tenant": None},
            "metadata": {},
            "deadline": None,
            "causation_id": None,
            "created_at": ts.isoformat(),
        },
    }
    if payload is not None:
        data["payload"] = payload
    return AuditEvent(
        kind="decision",
        ts=ts,
        outcome="allow",
        message_id=message_id,
        correlation_id=message_id,
        msg_type="portfolio.advise",
        sender="advisor-portal",
        recipient="portfolio_advisor",
        policy_sha256="e" * 64,
        data=data,
    )


def write(db: Path, events: list[AuditEvent]) -> None:
    async def run() -> None:
        store = SqlAuditStore(f"sqlite:///{db}", node="test-node", writer="thread")
        await store.start()
        for event in events:
            store.submit(event)
        await store.close()

    asyncio.run(run())


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An audit log (three advisor/admin decisions, one with a full payload, and a shadow
    run) and the candidate policy file."""
    tmp = tmp_path_factory.mktemp("replay")
    candidate = tmp / "candidate.yaml"
    candidate.write_text(CANDIDATE)
    sha = load_policy(candidate).sha256
    shadowing = {"name": "retail-banking", "version": "2026.12.0-rc1", "sha256": sha}
    changed = [
        {"id": "advisors-only", "enforced": "allow", "shadow": "deny", "code": "missing_role"}
    ]
    events = [
        AuditEvent("admin", T0, "start", data={"agents": [], "shadow_policy": shadowing}),
        decision("m-1", ["advisor"]),
        AuditEvent(
            "shadow",
            T0,
            "differs",
            message_id="m-1",
            msg_type="portfolio.advise",
            sender="advisor-portal",
            recipient="portfolio_advisor",
            data={
                "policy": "retail-banking",
                "policy_version": "2026.12.0-rc1",
                "policy_sha256": sha,
                "enforced": "allow",
                "shadow": "deny",
                "checks": {"advisors-only": "deny", "personal-data": "allow"},
                "changed": changed,
            },
        ),
        decision("m-2", ["advisor"], ts=T0 + timedelta(hours=1)),
        decision("m-3", ["admin"], ts=T0 + timedelta(hours=2)),
        decision(
            "m-4",
            ["admin"],
            ts=T0 + timedelta(hours=3),
            storage="full",
            payload={"note": f"write to {EMAIL}"},
        ),
        AuditEvent("admin", T0 + timedelta(hours=4), "stop"),
    ]
    db = tmp / "audit.db"
    write(db, events)
    return db, candidate


def test_replay_reports_which_decisions_change_and_why(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, candidate = setup
    assert main(["policy", "replay", "--audit", str(db), "--policy", str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "4 decisions recorded 2026-11-02T09:00:00Z .. 2026-11-02T12:00:00Z" in out
    assert "verdicts: 3 of 4 change (3 allow -> deny, 0 deny -> allow)" in out
    assert "      2  allow -> deny (now decided by advisors-only)  e.g. m-1, m-2" in out
    assert "      1  allow -> deny (now decided by personal-data)  e.g. m-4" in out
    assert "advisors-only (rbac): 4 compared; allow->deny 2; decides 2 now" in out
    assert (
        "personal-data (pii) on 3 decisions: not replayable on hashed payloads "
        "(it reads the payload)"
    ) in out
    assert "payload storage: hash 3, full 1" in out
    assert EMAIL not in out


def test_replay_json_with_a_window(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, candidate = setup
    argv = ["policy", "replay", "--audit", f"sqlite:///{db}", "--policy", str(candidate)]
    argv += ["--since", "2026-11-02T10:00", "--until", "2026-11-02T12:00Z", "--format", "json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == 2
    assert report["since"] == "2026-11-02T10:00:00Z"
    assert report["verdicts"] == {
        "allow->allow": 1,
        "allow->deny": 1,
        "deny->allow": 0,
        "deny->deny": 0,
    }
    assert report["changes"][0]["examples"] == ["m-2"]
    assert report["checks"][1]["not_replayed"][0]["count"] == 2


def test_replay_limit(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, candidate = setup
    argv = ["policy", "replay", "--audit", str(db), "--policy", str(candidate), "--limit", "1"]
    assert main([*argv, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decisions"] == 1 and report["truncated"] is True


def test_shadow_report(setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db, candidate = setup
    assert main(["policy", "shadow-report", "--audit", str(db), "--policy", str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "4 decisions compared" in out
    assert "differ: 1 (25.0%): 1 allow -> deny, 0 deny -> allow" in out
    assert "advisors-only: changed on 1; turns 1 allows into denials" in out
    assert "allow->deny 1 (missing_role 1)  e.g. m-1" in out
    assert main(["policy", "shadow-report", "--audit", str(db), "--format", "json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["candidates"]
    assert entry["compared"] == 4 and entry["differing"] == 1


def test_shadow_report_without_shadow_records(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = setup
    other = tmp_path / "other.yaml"
    other.write_text(CANDIDATE.replace("2026.12.0-rc1", "2027.1.0"))
    assert main(["policy", "shadow-report", "--audit", str(db), "--policy", str(other)]) == 0
    assert "no shadow records or shadowing starts for candidate retail-banking 2027.1.0" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["--audit", "{tmp}/missing.db"], "no audit database at {tmp}/missing.db"),
        (["--audit", "nosuch+driver://x/y"], "cannot read the audit log at nosuch+driver://x/y"),
        (
            ["--policy", "{tmp}/broken.yaml"],
            "broken.yaml:8:12: unknown_kind: unknown check kind 'rbca'; did you mean 'rbac'?",
        ),
        (["--policy", "{tmp}/absent.yaml"], "absent.yaml:1:1: policy_not_found"),
        (["--since", "2026-11-03", "--until", "2026-11-02"], "--since 2026-11-03T00:00:00Z is not"),
        (["--app", "no_such_module:create_app"], "cannot import module 'no_such_module'"),
    ],
)
def test_bad_input_exits_2_naming_what_and_where(
    setup: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    wanted: str,
) -> None:
    db, candidate = setup
    (tmp_path / "broken.yaml").write_text(CANDIDATE.replace("use: rbac", "use: rbca"))
    options = {"--audit": str(db), "--policy": str(candidate)}
    given = [a.format(tmp=tmp_path) for a in argv]
    options.update(dict(zip(given[::2], given[1::2], strict=True)))
    args = [x for pair in options.items() for x in pair]
    assert main(["policy", "replay", *args]) == 2
    err = capsys.readouterr().err
    assert wanted.format(tmp=tmp_path) in err, err
    assert "Traceback" not in err


def test_a_bad_date_is_a_usage_error_naming_the_option(
    setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db, _ = setup
    argv = ["policy", "shadow-report", "--audit", str(db), "--since", "last tuesday"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since: 'last tuesday' is not an ISO 8601 date or time" in err


@pytest.mark.parametrize("command", ["replay", "shadow-report"])
def test_help_teaches_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["policy", command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"govbus policy {command} --audit" in out
    if command == "replay":
        assert "not replayed" in out or "cannot be replayed" in out
