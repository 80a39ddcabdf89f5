"""Start ``govbus worker`` processes for integration tests and wait until they are ready."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


async def start_worker(
    app: str,
    bus: str,
    agents: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    audit: str = "memory://",
) -> asyncio.subprocess.Process:
    """``python -m govbus worker`` for ``app`` (``MODULE:FACTORY``) running ``agents`` on
    ``bus``; returns once it says it is ready (its stderr's first line)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "govbus", "worker", "--app", app, "--bus", bus,
        "--audit", audit, "--agents", ",".join(agents),
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=environment,
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(30):
        while b" agents " not in (line := await proc.stderr.readline()):
            assert line, "the worker exited before it was ready"
    return proc


async def stop_workers(workers: Sequence[asyncio.subprocess.Process]) -> None:
    """SIGTERM each worker still running (it drains) and wait for it to exit."""
    for proc in workers:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        async with asyncio.timeout(30):
            await proc.wait()
