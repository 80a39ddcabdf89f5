"""Envelope signatures: HMAC-SHA256 over the canonical form, with key ids for rotation.

Format: ``hmac-sha256:<key id>:<base64url digest>``. With keys configured, the orchestrator
verifies every envelope at ingress, so no agent on the bus can forge ``actor``,
``classification`` or ``metadata`` without the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from govbus.envelope.model import Message
from govbus.errors import ConfigError, SignatureError

_SCHEME = "hmac-sha256"


class HmacSigner:
    """Signs and verifies envelopes with named shared keys.

    Args:
        keys: key id -> secret bytes (at least 32 bytes each). All keys verify.
        active: the key id new signatures use (default: the first key).
    """

    def __init__(self, keys: Mapping[str, bytes], active: str | None = None) -> None:
        if not keys:
            raise ConfigError("HmacSigner needs at least one key")
        for kid, secret in keys.items():
            if ":" in kid or not kid:
                raise ConfigError(f"signing key id {kid!r} must be non-empty and contain no ':'")
            if len(secret) < 32:
                raise ConfigError(f"signing key {kid!r} is {len(secret)} bytes; use >= 32")
        self._keys = dict(keys)
        self._active = active or next(iter(self._keys))
        if self._active not in self._keys:
            raise ConfigError(f"active signing key {self._active!r} is not among the keys")

    def _mac(self, kid: str, message: Message) -> str:
        digest = hmac.new(self._keys[kid], message.canonical(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, message: Message) -> Message:
        """Return a copy of ``message`` carrying a signature by the active key."""
        signature = f"{_SCHEME}:{self._active}:{self._mac(self._active, message)}"
        return message.model_copy(update={"signature": signature})

    def verify(self, message: Message) -> None:
        """Raise :class:`SignatureError` unless ``message`` carries a valid signature."""
        if message.signature is None:
            raise SignatureError(f"message {message.id} is not signed")
        scheme, _, rest = message.signature.partition(":")
        kid, _, mac = rest.partition(":")
        if scheme != _SCHEME or not kid or not mac:
            raise SignatureError(f"message {message.id}: malformed signature")
        if kid not in self._keys:
            raise SignatureError(f"message {message.id}: unknown signing key {kid!r}")
        if not hmac.compare_digest(mac, self._mac(kid, message)):
            raise SignatureError(f"message {message.id}: signature does not verify")
