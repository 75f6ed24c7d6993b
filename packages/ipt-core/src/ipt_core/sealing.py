"""Secrets at rest: webhook secrets (and EHR credentials) sealed with AES-256-GCM.

Keys come from `IPT_SECRETS_KEYS`: comma-separated `key-id:base64-of-32-bytes`. The first key
seals new values; every listed key opens old ones, so a key is rotated by putting a new one
first, running `ipt secrets reseal` (it re-seals every stored value with the first key), and
then removing the old one. A sealed value is `ipt-sealed:v1:<key id>:<base64 nonce+ciphertext>`;
the associated data binds it to its row (`context`), so a sealed value copied into another
row does not open.

Values stored before sealing existed (plain `whsec_…`) are still read, and `ipt secrets
reseal` (also run by `ipt migrate` when keys are configured) seals them: the transition
needs no downtime, and the database holds no plain secret after the first migration run.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Keyring", "SecretsUnavailable", "is_sealed", "new_key"]

_PREFIX: Final = "ipt-sealed:v1:"
_NONCE_BYTES: Final = 12


class SecretsUnavailable(Exception):
    """No key is configured, or none of them opens a stored value."""


@dataclass(frozen=True)
class Keyring:
    """The configured keys, the first one current."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, value: str) -> Keyring:
        """Read `kid:base64key,kid2:base64key`; each key must be 32 bytes (AES-256).

        Raises:
            ValueError: a malformed entry (the message never includes key material).
        """
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(part.strip() for part in value.split(",")):
            if not entry:
                continue
            kid, sep, encoded = entry.partition(":")
            if not sep or not kid or ":" in kid:
                raise ValueError(f"IPT_SECRETS_KEYS entry {position + 1} is not key-id:base64")
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise ValueError(f"IPT_SECRETS_KEYS key {kid!r} is not base64") from None
            if len(key) != 32:
                raise ValueError(f"IPT_SECRETS_KEYS key {kid!r} must be 32 bytes")
            keys.append((kid, key))
        if not keys:
            raise ValueError("IPT_SECRETS_KEYS holds no key")
        if len({kid for kid, _ in keys}) != len(keys):
            raise ValueError("IPT_SECRETS_KEYS repeats a key id")
        return cls(tuple(keys))

    @property
    def current_kid(self) -> str:
        """The id of the key new values are sealed with."""
        return self.keys[0][0]

    def seal(self, plaintext: str, *, context: str) -> str:
        """Seal `plaintext` with the current key, bound to `context` (e.g. the row's id)."""
        kid, key = self.keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_PREFIX}{kid}:" + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, context: str) -> str:
        """The plaintext of a stored value; a legacy plain value is returned as it is.

        Raises:
            SecretsUnavailable: the key is not configured, or the value does not open.
        """
        if not is_sealed(stored):
            return stored
        kid, _, encoded = stored.removeprefix(_PREFIX).partition(":")
        key = dict(self.keys).get(kid)
        if key is None:
            raise SecretsUnavailable(f"no key {kid!r} in IPT_SECRETS_KEYS")
        try:
            raw = base64.b64decode(encoded, validate=True)
            plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (binascii.Error, InvalidTag, ValueError):
            raise SecretsUnavailable(f"a value sealed with key {kid!r} does not open") from None
        return plain.decode()

    def needs_reseal(self, stored: str) -> bool:
        """Whether a stored value is plain or sealed with a key other than the current one."""
        return not stored.startswith(f"{_PREFIX}{self.current_kid}:")


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (rather than a legacy plain value)."""
    return stored.startswith(_PREFIX)


def new_key(kid: str) -> str:
    """A fresh `IPT_SECRETS_KEYS` entry: `kid:` and 32 random bytes in base64."""
    return f"{kid}:" + base64.b64encode(os.urandom(32)).decode()
