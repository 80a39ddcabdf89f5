"""The committed red-team corpus is what redteam/build.py generates, and it loads cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from govbus.redteam import load_corpus

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"


@pytest.mark.skipif(
    not CORPORA.is_dir(), reason=f"the public corpora are not on this machine ({CORPORA})"
)
def test_committed_corpus_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "redteam" / "build.py"), "--check"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_committed_corpus_loads_with_every_required_category() -> None:
    cases = load_corpus([ROOT / "redteam" / "corpus"])
    attacks = [c for c in cases if c.is_attack]
    benign = [c for c in cases if not c.is_attack]
    assert len(attacks) >= 1000 and len(benign) >= 1000
    categories = {c.category for c in attacks}
    assert len(categories) >= 10
    assert {"prompt_injection.direct", "prompt_injection.indirect", "jailbreak",
            "system_prompt_extraction", "pii_exfiltration", "secrets", "rbac_escalation",
            "tenant_isolation"} <= categories  # fmt: skip
    assert all(c.source and c.license for c in cases)
