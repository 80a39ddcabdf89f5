"""Bearer tokens for the inventory endpoint: who may read, who may pause and resume agents.

Tokens come from the environment (``GOVBUS_INVENTORY_TOKEN``: read, named ``inventory-token``;
``GOVBUS_ADMIN_TOKEN``: admin, named ``admin-token``) and from a YAML file mapping a name
(the caller's identity in the audit log) to a token and its scope::

    risk-office: {token: "<at least 16 characters>", scope: read}
    ops-oncall:  {token: "<at least 16 characters>", scope: admin}

``admin`` also grants ``read``. A presented token is compared with every configured one in
constant time (:func:`hmac.compare_digest` over sha256 digests, so neither the length nor
the position of a near match shows in the timing), and every comparison runs.

Example:
    >>> tokens = Tokens([Token("ops", "admin", "0123456789abcdef")])
    >>> tokens.authenticate("0123456789abcdef")
    Principal(name='ops', scope='admin')
    >>> tokens.authenticate("wrong") is None
    True
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govbus.errors import ConfigError

Scope = Literal["read", "admin"]

#: Environment variable holding a read token (identity ``inventory-token``).
READ_TOKEN_ENV: Final = "GOVBUS_INVENTORY_TOKEN"
#: Environment variable holding an admin token (identity ``admin-token``).
ADMIN_TOKEN_ENV: Final = "GOVBUS_ADMIN_TOKEN"
#: The shortest token accepted: a guessable token protects nothing.
MIN_TOKEN_LENGTH: Final = 16


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the token's configured name and its scope."""

    name: str
    scope: Scope

    def allows(self, scope: Scope) -> bool:
        """Whether this caller holds ``scope`` (admin includes read)."""
        return self.scope == "admin" or scope == "read"


@dataclass(frozen=True)
class Token:
    """One configured token."""

    name: str
    scope: Scope
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a token needs a name (the caller's identity in the audit log)")
        if self.scope not in ("read", "admin"):
            raise ConfigError(f"token {self.name!r}: scope must be read or admin")
        if len(self.secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"token {self.name!r} is shorter than {MIN_TOKEN_LENGTH} characters; "
                "use a random one (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
            )


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class Tokens:
    """The configured tokens; :meth:`authenticate` turns a presented one into a caller."""

    def __init__(self, tokens: Iterable[Token] = ()) -> None:
        self._tokens = tuple(tokens)
        digests = [_digest(t.secret) for t in self._tokens]
        if len(set(digests)) != len(digests):
            raise ConfigError("two configured tokens have the same secret; give each its own")
        self._entries = tuple(zip(digests, self._tokens, strict=True))

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def names(self) -> list[str]:
        """The configured identities with their scopes (never the secrets)."""
        return [f"{t.name} ({t.scope})" for t in self._tokens]

    def authenticate(self, presented: str) -> Principal | None:
        """The caller whose token is ``presented``, or None; constant time per token."""
        digest = _digest(presented)
        found: Token | None = None
        for expected, token in self._entries:
            if hmac.compare_digest(digest, expected):  # every comparison runs
                found = token
        return None if found is None else Principal(found.name, found.scope)

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens((*self._tokens, *other._tokens))


class _TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(min_length=1)
    scope: Scope = "read"


def tokens_from_env(environ: Mapping[str, str] | None = None) -> Tokens:
    """Tokens from ``GOVBUS_INVENTORY_TOKEN`` and ``GOVBUS_ADMIN_TOKEN`` (empty ones ignored)."""
    env = os.environ if environ is None else environ
    found = []
    if env.get(READ_TOKEN_ENV):
        found.append(Token("inventory-token", "read", env[READ_TOKEN_ENV]))
    if env.get(ADMIN_TOKEN_ENV):
        found.append(Token("admin-token", "admin", env[ADMIN_TOKEN_ENV]))
    return Tokens(found)


def load_tokens(path: str | Path) -> Tokens:
    """Tokens from a YAML file mapping names to ``{token, scope}``.

    Raises:
        ConfigError: the file is missing or invalid; the message names the file and entry.
    """
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: tokens file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read tokens: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"{file}: a tokens file maps names to {{token, scope}}, e.g. "
            "'risk-office: {token: ..., scope: read}'"
        )
    tokens = []
    for name, raw in data.items():
        try:
            entry = _TokenEntry.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ConfigError(f"{file}: token {name!r}: {problems}") from None
        try:
            tokens.append(Token(str(name), entry.scope, entry.token))
        except ConfigError as exc:
            raise ConfigError(f"{file}: {exc}") from None
    try:
        return Tokens(tokens)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def configured_tokens(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Tokens:
    """The tokens from the file (if given) and the environment together."""
    from_file = load_tokens(path) if path is not None else Tokens()
    return from_file + tokens_from_env(environ)
