"""Verified bearer tokens are cached until they expire, and never outlive their signing key."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ipt_api.auth import NotAuthenticated, TokenVerifier

_ISSUER, _AUDIENCE = "https://issuer.example", "https://api.example/fhir"


def _jwks(path: Path, keys: dict[str, ec.EllipticCurvePrivateKey]) -> None:
    entries = []
    for kid, key in keys.items():
        jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
        entries.append({**jwk, "kid": kid, "alg": "ES256"})
    path.write_text(json.dumps({"keys": entries}))


def _token(key: ec.EllipticCurvePrivateKey, kid: str, *, lifetime_s: float = 300) -> str:
    claims = {
        "iss": _ISSUER,
        "aud": _AUDIENCE,
        "sub": "clinician-1",
        "scope": "system/*.read",
        "exp": int(time.time() + lifetime_s),
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


async def test_a_verified_token_is_served_from_the_cache(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _jwks(tmp_path / "jwks.json", {"k1": key})
    verifier = TokenVerifier(issuer=_ISSUER, audience=_AUDIENCE, jwks=str(tmp_path / "jwks.json"))
    token = _token(key, "k1")
    first = await verifier.authenticate(token)
    second = await verifier.authenticate(token)
    assert second is first  # the cached verification, not a second decode
    assert first.principal.subject == "clinician-1"


async def test_a_cached_token_is_refused_once_its_key_leaves_the_jwks(tmp_path: Path) -> None:
    old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    _jwks(jwks, {"old": old})
    verifier = TokenVerifier(issuer=_ISSUER, audience=_AUDIENCE, jwks=str(jwks))
    token = _token(old, "old")
    await verifier.authenticate(token)
    _jwks(jwks, {"new": new})  # the issuer rotated its key
    verifier._fetched_at = 0.0  # the periodic refresh is due
    with pytest.raises(NotAuthenticated):
        await verifier.authenticate(token)


async def test_an_expired_token_is_not_served_from_the_cache(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    _jwks(tmp_path / "jwks.json", {"k1": key})
    verifier = TokenVerifier(issuer=_ISSUER, audience=_AUDIENCE, jwks=str(tmp_path / "jwks.json"))
    token = _token(key, "k1", lifetime_s=1)
    await verifier.authenticate(token)
    await asyncio.sleep(2.1)  # past exp (whole seconds)
    with pytest.raises(NotAuthenticated):
        await verifier.authenticate(token)
