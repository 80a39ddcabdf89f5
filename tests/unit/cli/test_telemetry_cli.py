"""``--trace`` and ``--log-format`` on the command line, and the OTEL_* variables."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from govbus.cli.main import main
from govbus.cli.telemetry import setup_telemetry
from govbus.errors import ConfigError


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_run_with_console_traces_prints_every_span_kind_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--audit", f"sqlite:///{tmp_path}/a.db", "--quiet", "--trace", "console"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "summary:" in out  # the command's own output stays on stdout
    for name in (
        '"request advisory.request"',
        '"publish advisory.request"',
        '"policy ',
        '"process intake"',
        '"handle intake"',
        '"fallback portfolio_advisor"',
    ):
        assert name in err, name  # fmt: skip


def test_json_logs_carry_trace_and_correlation_ids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--audit", f"sqlite:///{tmp_path}/a.db", "--quiet",
                 "--log-format", "json"])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines, err
    handled = [line for line in lines if line["message_id"]]
    assert handled and all(line["trace_id"] and line["correlation_id"] for line in handled)


def test_an_unknown_exporter_in_the_environment_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ConfigError, match="unknown traces exporter 'jaeger'"):
        setup_telemetry()


def test_no_exporter_configured_makes_no_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_METRICS_EXPORTER", raising=False)
    telemetry = setup_telemetry()
    assert telemetry.tracer_provider is None and telemetry.meter_provider is None
