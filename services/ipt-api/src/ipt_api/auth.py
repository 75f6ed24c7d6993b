"""Bearer-token authentication: SMART on FHIR access tokens (JWT) checked against a JWKS.

The API is a resource server: it never issues tokens for production, it only verifies the
signature (RS256/RS384/ES256/ES384), issuer, audience and expiry, and turns the granted SMART
scopes (v1 `patient/CarePlan.read`, v2 `system/CarePlan.rs`) into a `Principal`.

Every bad token is a 401 (never a 500): the header's `alg` must suit the key its `kid` names
(an ES256 token naming an RSA key is refused before any cryptography runs), `aud`, `iss`,
`exp` and `sub` are required, and `scope` must be a string (or `scp` a list of strings).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from ipt_api.principal import Principal
from ipt_core.fhir.errors import FhirError

__all__ = ["KeysUnavailable", "NotAuthenticated", "TokenVerifier", "VerifiedToken"]

_log = logging.getLogger(__name__)
_ALGORITHMS = frozenset({"RS256", "RS384", "ES256", "ES384"})
# Which token algorithms a key can verify, by key type (and curve): never across families.
_KEY_ALGORITHMS: dict[tuple[str, str | None], frozenset[str]] = {
    ("RSA", None): frozenset({"RS256", "RS384"}),
    ("EC", "P-256"): frozenset({"ES256"}),
    ("EC", "P-384"): frozenset({"ES384"}),
}
_REQUIRED_CLAIMS = ["exp", "sub", "iss", "aud"]
_REFRESH_AFTER_S = 300.0
_MIN_REFRESH_GAP_S = 30.0  # an unknown key id triggers at most one refresh per gap
_CACHED_TOKENS = 4096  # verified tokens kept (least recently used dropped first)


class NotAuthenticated(FhirError):
    """The request carries no valid credentials."""

    status, code = 401, "login"


@dataclass(frozen=True)
class VerifiedToken:
    """A valid token: who it stands for, and when it stops being valid (epoch seconds)."""

    principal: Principal
    expires_at: float


@dataclass(frozen=True)
class _Key:
    key: Any
    algorithms: frozenset[str]


@dataclass(frozen=True)
class _Verified:
    verified: VerifiedToken
    kid: str
    key: _Key  # the key object that verified it: a refresh replaces every key object


class KeysUnavailable(FhirError):
    """The issuer's keys cannot be loaded (identity provider unreachable or its JWKS broken)."""

    status, code = 503, "transient"


class TokenVerifier:
    """Verifies access tokens against the issuer's keys, fetched and cached by key id."""

    def __init__(self, *, issuer: str, audience: str, jwks: str) -> None:
        """Configure the verifier; `jwks` is an https URL or a file path of a JWK Set.

        `audience` is required: a token without it, or issued for another API, is refused.
        """
        if not audience:
            raise ValueError("a token audience is required")
        self.issuer = issuer
        self.audience = audience
        self.jwks_source = jwks
        self._keys: dict[str, _Key] = {}
        self._fetched_at = 0.0
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """Return the principal of a valid token; raise NotAuthenticated otherwise."""
        return (await self.authenticate(token)).principal

    async def authenticate(self, token: str) -> VerifiedToken:
        """Return the principal and expiry of a valid token; raise NotAuthenticated otherwise.

        A token verified before is taken from a bounded cache, keyed by its hash, until it
        expires, and only while the key that verified it is still the issuer's: a key dropped
        from the JWKS refuses its tokens at the next refresh, as without the cache.
        """
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._verified.get(digest)
        fresh = cached is not None and time.time() < cached.verified.expires_at
        if cached is not None and fresh and await self._key(cached.kid) is cached.key:
            self._verified.move_to_end(digest)
            return cached.verified
        verified, kid, key = await self._verify(token)
        self._verified[digest] = _Verified(verified, kid, key)
        if len(self._verified) > _CACHED_TOKENS:
            self._verified.popitem(last=False)
        return verified

    async def _verify(self, token: str) -> tuple[VerifiedToken, str, _Key]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("The bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
            raise NotAuthenticated("The bearer token's algorithm is not accepted")
        kid = header.get("kid", "")
        kid = kid if isinstance(kid, str) else ""
        key = await self._key(kid)
        if algorithm not in key.algorithms:
            raise NotAuthenticated("The bearer token's algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise NotAuthenticated(f"The bearer token is not valid: {error}") from None
        except (TypeError, ValueError):  # a key or claim of the wrong shape: still a bad token
            raise NotAuthenticated("The bearer token is not valid") from None
        return VerifiedToken(_principal(claims), float(claims["exp"])), kid, key

    async def _key(self, kid: str) -> _Key:
        stale = time.monotonic() - self._fetched_at
        if (kid not in self._keys and stale > _MIN_REFRESH_GAP_S) or stale > _REFRESH_AFTER_S:
            await self._refresh()
        if kid not in self._keys:
            if kid == "" and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            raise NotAuthenticated("The bearer token is signed by an unknown key")
        return self._keys[kid]

    async def _refresh(self) -> None:
        try:
            document = await self._load()
            entries = document.get("keys", [])
            if not isinstance(entries, list):
                raise ValueError("keys is not a list")
        except (httpx.HTTPError, OSError, ValueError, AttributeError) as error:
            if self._keys:  # keep verifying with the keys already known; try again later
                self._fetched_at = time.monotonic()
                _log.warning("JWKS refresh failed (%s); keeping the known keys", _kind(error))
                return
            _log.error("JWKS cannot be loaded (%s)", _kind(error))
            raise KeysUnavailable("The identity provider's keys cannot be loaded; retry") from None
        keys: dict[str, _Key] = {}
        for data in entries:
            try:
                jwk = jwt.PyJWK.from_dict(data)
            except (jwt.PyJWTError, TypeError, ValueError, AttributeError):
                continue  # a key this service cannot use (another type, a bad encoding)
            keys[str(jwk.key_id or "")] = _usable(jwk, data)
        self._keys = keys
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


def _kind(error: Exception) -> str:
    return type(error).__name__


def _usable(jwk: jwt.PyJWK, data: dict[str, Any]) -> _Key:
    """The key and the token algorithms it may verify (its own `alg` when the JWK names one)."""
    curve = data.get("crv") if jwk.key_type == "EC" else None
    allowed = _KEY_ALGORITHMS.get((str(jwk.key_type), curve), frozenset())
    named = data.get("alg")
    if isinstance(named, str):
        allowed &= {named}
    return _Key(jwk.key, allowed)


def _principal(claims: dict[str, Any]) -> Principal:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise NotAuthenticated("The bearer token's sub claim is not a string")
    patient = claims.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise NotAuthenticated("The bearer token's patient claim is not a string")
    client = claims.get("client_id") or claims.get("azp")
    return Principal(
        subject=subject,
        scopes=_scopes(claims),
        patient=patient or None,
        client_id=client if isinstance(client, str) and client else None,
    )


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """SMART `scope` (space-separated string) or `scp` (list of strings); anything else is bad."""
    if "scope" in claims:
        raw = claims["scope"]
        if not isinstance(raw, str):
            raise NotAuthenticated("The bearer token's scope claim is not a string")
        return frozenset(raw.split())
    raw = claims.get("scp", [])
    if isinstance(raw, str):
        return frozenset(raw.split())
    if not isinstance(raw, list) or not all(isinstance(scope, str) for scope in raw):
        raise NotAuthenticated("The bearer token's scp claim is not a list of strings")
    return frozenset(raw)
