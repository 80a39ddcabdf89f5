"""The app configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.errors import ConfigError
from govbus.orchestrator import App, AppConfig


def test_from_config_resolves_policy_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "apiVersion: govbus/v1\nkind: Policy\nmetadata: {name: p, version: '1'}\n"
        "spec: {checks: []}\n"
    )
    (tmp_path / "govbus.yaml").write_text(
        "name: demo\npolicy: p.yaml\naudit: {url: 'memory://', durability: sync}\n"
    )
    app = App.from_config(tmp_path / "govbus.yaml")
    assert app.name == "demo"
    assert app.policy.name == "p"


def test_unknown_setting_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "govbus.yaml"
    cfg.write_text("name: demo\npolicyy: p.yaml\n")
    with pytest.raises(ConfigError, match=r"govbus\.yaml.*policyy"):
        AppConfig.load(cfg)


def test_yaml_error_points_at_line(tmp_path: Path) -> None:
    cfg = tmp_path / "govbus.yaml"
    cfg.write_text("name: demo\naudit: [unclosed\n")
    with pytest.raises(ConfigError, match=r"govbus\.yaml:3:1"):
        AppConfig.load(cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        AppConfig.load(tmp_path / "absent.yaml")


def test_unknown_bus_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown bus URL"):
        App(bus="kafka://x")
