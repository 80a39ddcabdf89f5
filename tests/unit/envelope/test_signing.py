"""Envelope signatures: HMAC over the canonical form, key rotation, forgery detection."""

from __future__ import annotations

import pytest

from govbus.envelope import Actor, HmacSigner, Message
from govbus.errors import ConfigError, SignatureError

KEY_A = b"a" * 32
KEY_B = b"b" * 32


def msg() -> Message:
    return Message(type="a.b", sender="web", actor=Actor(subject="u", roles=("customer",)))


def test_signed_message_verifies() -> None:
    signer = HmacSigner({"k1": KEY_A})
    signer.verify(signer.sign(msg()))


def test_forged_actor_fails_verification() -> None:
    """Changing any signed field (here: the roles) breaks the signature."""
    signer = HmacSigner({"k1": KEY_A})
    signed = signer.sign(msg())
    forged = signed.model_copy(update={"actor": Actor(subject="u", roles=("admin",))})
    with pytest.raises(SignatureError, match="does not verify"):
        signer.verify(forged)


def test_unsigned_and_unknown_key_are_rejected() -> None:
    signer = HmacSigner({"k1": KEY_A})
    with pytest.raises(SignatureError, match="not signed"):
        signer.verify(msg())
    other = HmacSigner({"k2": KEY_B})
    with pytest.raises(SignatureError, match="unknown signing key"):
        signer.verify(other.sign(msg()))


def test_rotation_old_key_still_verifies() -> None:
    old = HmacSigner({"k1": KEY_A})
    rotated = HmacSigner({"k2": KEY_B, "k1": KEY_A}, active="k2")
    rotated.verify(old.sign(msg()))
    assert rotated.sign(msg()).signature.startswith("hmac-sha256:k2:")  # type: ignore[union-attr]


def test_short_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=">= 32"):
        HmacSigner({"k1": b"short"})
