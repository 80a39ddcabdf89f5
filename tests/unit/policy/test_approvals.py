"""Approval records and strict mode: what runs is exactly what was approved."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.errors import ConfigError
from govbus.orchestrator import App
from govbus.policy import load_policy, parse_policy
from govbus.policy.approvals import (
    UnapprovedPolicyError,
    find_approval,
    load_approvals,
    require_approval,
)
from tests.support import copy_default_policy

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "policies" / "default.yaml"
APPROVALS = ROOT / "governance" / "approvals.yaml"


def test_the_default_policy_is_approved() -> None:
    """Changing policies/default.yaml without a new approval record fails here."""
    policy = load_policy(DEFAULT)
    approval = find_approval(policy, load_approvals(APPROVALS))
    assert approval is not None, f"no approval for {policy.sha256}"
    assert (approval.name, approval.version) == (policy.name, policy.version)


def test_a_changed_policy_is_not_approved(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace("max_bytes: 65536", "max_bytes: 1000000")
    changed = copy_default_policy(tmp_path, text)
    with pytest.raises(UnapprovedPolicyError) as info:
        require_approval(load_policy(changed), APPROVALS)
    assert load_policy(changed).sha256 in str(info.value)
    assert info.value.code == "policy_not_approved"


def test_reformatting_keeps_the_approval(tmp_path: Path) -> None:
    """Comments and layout do not change the hash, so they need no new approval."""
    text = "\n".join(
        line for line in DEFAULT.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    policy = parse_policy(text, source="no-comments.yaml", base_dir=DEFAULT.parent)
    require_approval(policy, APPROVALS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("approvals: [{name: x}]", "approval 0"),
        ("nothing: here", "'approvals' list"),
        ("approvals: [\n", "invalid YAML"),
    ],
)
def test_bad_approval_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "approvals.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_approvals(path)


async def test_strict_app_refuses_an_unapproved_policy(tmp_path: Path) -> None:
    text = DEFAULT.read_text().replace("max_bytes: 65536", "max_bytes: 4096")
    changed = copy_default_policy(tmp_path, text, "policy.yaml")
    app = App("strict", policy=changed, audit="memory://", strict=True, approvals=APPROVALS)
    with pytest.raises(UnapprovedPolicyError, match="no approval record"):
        await app.start()
    await app.close()


async def test_strict_app_starts_with_the_approved_policy() -> None:
    app = App("strict", policy=DEFAULT, audit="memory://", strict=True, approvals=APPROVALS)
    async with app:
        assert app.approval is not None
        assert app.approval.reference.startswith("RISK-COMMITTEE")


async def test_strict_mode_from_the_config_file(tmp_path: Path) -> None:
    copy_default_policy(tmp_path, DEFAULT.read_text().replace("65536", "1024"), "policy.yaml")
    (tmp_path / "approvals.yaml").write_text(APPROVALS.read_text())
    (tmp_path / "govbus.yaml").write_text(
        "name: s\npolicy: policy.yaml\naudit: {url: 'memory://'}\n"
        "require_approved_policy: true\napprovals: approvals.yaml\n"
    )
    app = App.from_config(tmp_path / "govbus.yaml")
    with pytest.raises(UnapprovedPolicyError, match=str(tmp_path / "approvals.yaml")):
        await app.start()
    await app.close()
