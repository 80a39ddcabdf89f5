"""``govbus policy ...`` commands."""

from __future__ import annotations

from collections.abc import Sequence

from govbus.policy import load_policy


def policy_hash(files: Sequence[str]) -> int:
    for file in files:
        policy = load_policy(file)
        print(f"{policy.sha256}  {file}")
    return 0
