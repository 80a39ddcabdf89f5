"""Helpers shared by tests (not fixtures: plain functions, imported explicitly)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = ROOT / "policies" / "default.yaml"


def copy_default_policy(
    directory: Path, text: str | None = None, name: str = "default.yaml"
) -> Path:
    """Write the default policy (or ``text``) into ``directory`` with the schema files it names.

    The policy refers to ``schemas/...`` relative to itself, so a copy needs them beside it.
    """
    shutil.copytree(ROOT / "policies" / "schemas", directory / "schemas", dirs_exist_ok=True)
    target = directory / name
    target.write_text(DEFAULT_POLICY.read_text() if text is None else text)
    return target


def migrate_at_once(url: str, workers: int = 6) -> tuple[list[BaseException], list[Any]]:
    """``workers`` engines run the audit migration on ``url`` at the same instant (as worker
    processes starting together do); returns the errors they raised and the schema versions
    recorded afterwards."""
    import sqlalchemy as sa

    from govbus.audit.database import migrate

    engines = [sa.create_engine(url) for _ in range(workers)]
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def start(engine: sa.Engine) -> None:
        barrier.wait()
        try:
            migrate(engine, url)
        except BaseException as exc:  # returned to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with engines[0].connect() as conn:
            versions = list(conn.execute(sa.text("SELECT version FROM audit_schema_version")))
    finally:
        for e in engines:
            e.dispose()
    return errors, versions
