"""Signed bearer tokens for the tests: an RSA key, the JWKS file the API trusts, and tokens.

The API in JWT mode checks every token's signature against the keys of its JWKS file
(`auth_jwks`), and its issuer, audience and expiry (README.md#security). Tokens here carry the
key id `k1`, the id the key has in that file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ipt_api.settings import ApiSettings
from tests.support.api import api_settings

__all__ = ["KEY_ID", "jwt_api_settings", "new_signing_key", "signed_token", "signing_key"]

KEY_ID = "k1"


def new_signing_key() -> rsa.RSAPrivateKey:
    """A throwaway 2048-bit RSA key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    """The key the API under test trusts (one per test module: making one takes a while)."""
    return new_signing_key()


def jwt_api_settings(
    key: rsa.RSAPrivateKey, directory: Path, *, issuer: str, audience: str, **overrides: object
) -> ApiSettings:
    """Test API settings in JWT mode, trusting `key` (its JWKS file is written to `directory`)."""
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": KEY_ID, "use": "sig"}]}))
    return api_settings(
        auth_mode="jwt",
        auth_issuer=issuer,
        auth_audience=audience,
        auth_jwks=str(jwks),
        **overrides,
    )


def signed_token(
    key: rsa.RSAPrivateKey,
    issuer: str,
    audience: str,
    subject: str,
    scope: str,
    *,
    expires_in: int = 300,
    algorithm: str = "RS384",
    claims: Mapping[str, object] | None = None,
) -> str:
    """A JWT signed with `key`, expiring in `expires_in` seconds; `claims` go in as they are
    (and win over the standard ones: a test may send a wrong `aud` or `exp`)."""
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "exp": int(time.time()) + expires_in,
        "scope": scope,
        **(claims or {}),
    }
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": KEY_ID})
