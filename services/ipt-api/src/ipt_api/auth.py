"""Bearer-token authentication: SMART on FHIR access tokens (JWT) checked against a JWKS.

The API is a resource server: it never issues tokens for production, it only verifies the
signature (RS256/RS384/ES256/ES384), issuer, audience and expiry, and turns the granted SMART
scopes (v1 `patient/CarePlan.read`, v2 `system/CarePlan.rs`) into a `Principal`.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from ipt_api.principal import Principal
from ipt_core.fhir.errors import FhirError

__all__ = ["NotAuthenticated", "TokenVerifier"]

_ALGORITHMS = ["RS256", "RS384", "ES256", "ES384"]
_REFRESH_AFTER_S = 300.0
_MIN_REFRESH_GAP_S = 30.0  # an unknown key id triggers at most one refresh per gap


class NotAuthenticated(FhirError):
    """The request carries no valid credentials."""

    status, code = 401, "login"


class TokenVerifier:
    """Verifies access tokens against the issuer's keys, fetched and cached by key id."""

    def __init__(self, *, issuer: str, audience: str | None, jwks: str) -> None:
        """Configure the verifier; `jwks` is an https URL or a file path of a JWK Set."""
        self.issuer = issuer
        self.audience = audience
        self.jwks_source = jwks
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0

    async def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise NotAuthenticated otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("The bearer token is not a JWT") from None
        key = await self._key(str(header.get("kid", "")))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                issuer=self.issuer,
                audience=self.audience,
                options={"verify_aud": self.audience is not None, "require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise NotAuthenticated(f"The bearer token is not valid: {error}") from None
        return _principal(claims)

    async def _key(self, kid: str) -> Any:
        stale = time.monotonic() - self._fetched_at
        if (kid not in self._keys and stale > _MIN_REFRESH_GAP_S) or stale > _REFRESH_AFTER_S:
            await self._refresh()
        if kid not in self._keys:
            if kid == "" and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise NotAuthenticated("The bearer token is signed by an unknown key")
        return self._keys[kid]

    async def _refresh(self) -> None:
        document = await self._load()
        keys = jwt.PyJWKSet.from_dict(document).keys
        self._keys = {str(key.key_id or ""): key.key for key in keys}
        self._fetched_at = time.monotonic()

    async def _load(self) -> dict[str, Any]:
        if self.jwks_source.startswith(("https://", "http://")):
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(self.jwks_source)
                response.raise_for_status()
                document: dict[str, Any] = response.json()
                return document
        text = await asyncio.to_thread(Path(self.jwks_source).read_text)
        loaded: dict[str, Any] = json.loads(text)
        return loaded


def _principal(claims: dict[str, Any]) -> Principal:
    raw = claims.get("scope", claims.get("scp", ""))
    scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
    patient = claims.get("patient")
    return Principal(
        subject=str(claims["sub"]),
        scopes=frozenset(scopes),
        patient=str(patient) if patient else None,
    )
