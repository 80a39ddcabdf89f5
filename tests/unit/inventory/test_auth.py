"""Bearer tokens: identities, scopes, constant-time matching, configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from govbus.errors import ConfigError
from govbus.inventory import Principal, Token, Tokens, configured_tokens, load_tokens
from govbus.inventory.auth import tokens_from_env


def test_a_token_authenticates_as_its_configured_name_and_scope() -> None:
    tokens = Tokens([Token("risk", "read", "r" * 20), Token("ops", "admin", "a" * 20)])
    assert tokens.authenticate("r" * 20) == Principal("risk", "read")
    assert tokens.authenticate("a" * 20) == Principal("ops", "admin")
    assert tokens.authenticate("r" * 19) is None
    assert tokens.authenticate("") is None


def test_admin_grants_read_but_read_does_not_grant_admin() -> None:
    assert Principal("ops", "admin").allows("read") and Principal("ops", "admin").allows("admin")
    assert Principal("risk", "read").allows("read")
    assert not Principal("risk", "read").allows("admin")


def test_short_tokens_and_shared_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="shorter than 16"):
        Token("weak", "read", "password")
    with pytest.raises(ConfigError, match="same secret"):
        Tokens([Token("a", "read", "s" * 16), Token("b", "admin", "s" * 16)])


def test_the_secret_never_appears_in_a_repr() -> None:
    token = Token("ops", "admin", "very-secret-value-123")
    assert "very-secret" not in repr(token)
    assert "very-secret" not in " ".join(Tokens([token]).names)


def test_environment_tokens_are_named_after_their_variable() -> None:
    env = {"GOVBUS_INVENTORY_TOKEN": "i" * 16, "GOVBUS_ADMIN_TOKEN": "a" * 16}
    tokens = tokens_from_env(env)
    assert tokens.authenticate("i" * 16) == Principal("inventory-token", "read")
    assert tokens.authenticate("a" * 16) == Principal("admin-token", "admin")
    assert len(tokens_from_env({"GOVBUS_INVENTORY_TOKEN": ""})) == 0


def test_a_tokens_file_maps_names_to_token_and_scope(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        "risk-office: {token: r-0123456789abcdef}\n"
        "ops-oncall: {token: a-0123456789abcdef, scope: admin}\n"
    )
    tokens = configured_tokens(path, environ={"GOVBUS_ADMIN_TOKEN": "e" * 16})
    assert tokens.authenticate("r-0123456789abcdef") == Principal("risk-office", "read")
    assert tokens.authenticate("a-0123456789abcdef") == Principal("ops-oncall", "admin")
    assert tokens.authenticate("e" * 16) == Principal("admin-token", "admin")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[]\n", "maps names to"),
        ("ops: {token: a-0123456789abcdef, scope: root}\n", "token 'ops': scope"),
        ("ops: {token: a-0123456789abcdef, extra: 1}\n", "token 'ops': extra"),
        ("ops: {token: short}\n", "shorter than 16"),
        ("ops: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_tokens_file_names_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as info:
        load_tokens(path)
    assert str(path) in str(info.value)


def test_a_missing_tokens_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokens file not found"):
        load_tokens(tmp_path / "nope.yaml")
