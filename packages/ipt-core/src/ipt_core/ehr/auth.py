"""Credentials for EHR requests: none, a static bearer token, or SMART Backend Services.

SMART Backend Services (hl7.org/fhir/smart-app-launch/backend-services.html): a JWT assertion
signed with our private key (PyJWT), `iss` = `sub` = client id, `aud` = the token URL, a
unique `jti` and `exp` at most five minutes ahead, exchanged with the `client_credentials`
grant for an access token that is cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Final, Protocol

import httpx
import jwt

from ipt_core.ehr.endpoints import BearerAuth, EhrEndpoint, SmartBackendAuth
from ipt_core.ehr.errors import RemoteAuthFailed, RemoteUnavailable

__all__ = ["Authorizer", "SmartBackendAuthorizer", "authorizer_for"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME_S: Final = 240  # < 5 minutes, as the specification requires
_EXPIRY_MARGIN_S: Final = 30  # renew this long before the token expires


class Authorizer(Protocol):
    """Gives the Authorization header of the next request."""

    async def header(self, http: httpx.AsyncClient, *, fresh: bool = False) -> str | None:
        """The header value, or None; `fresh` drops a cached token first (after a 401)."""


class _NoAuthorizer:
    async def header(self, http: httpx.AsyncClient, *, fresh: bool = False) -> str | None:
        return None


class _BearerAuthorizer:
    def __init__(self, auth: BearerAuth) -> None:
        self._token = auth.token.get_secret_value() if auth.token else ""

    async def header(self, http: httpx.AsyncClient, *, fresh: bool = False) -> str | None:
        return f"Bearer {self._token}"


class SmartBackendAuthorizer:
    """SMART Backend Services client: signed assertion, `client_credentials`, cached token."""

    def __init__(
        self,
        auth: SmartBackendAuth,
        base_url: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`base_url` locates `.well-known/smart-configuration` when no token URL is given."""
        self._auth = auth
        self._base_url = base_url
        self._clock = clock
        self._token_url = auth.token_url
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def header(self, http: httpx.AsyncClient, *, fresh: bool = False) -> str | None:
        """`Bearer <token>`, fetching a token when none is cached, it expires, or `fresh`."""
        async with self._lock:
            if fresh or self._token is None or self._clock() >= self._expires_at:
                await self._fetch_token(http)
            return f"Bearer {self._token}"

    def assertion(self, token_url: str) -> str:
        """A new signed client assertion for `token_url` (a new `jti` every time)."""
        now = int(self._clock())
        claims = {
            "iss": self._auth.client_id,
            "sub": self._auth.client_id,
            "aud": token_url,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME_S,
        }
        key = self._auth.private_key.get_secret_value() if self._auth.private_key else ""
        return jwt.encode(
            claims, key, algorithm=self._auth.alg, headers={"kid": self._auth.kid, "typ": "JWT"}
        )

    async def _fetch_token(self, http: httpx.AsyncClient) -> None:
        token_url = self._token_url or await self._discover(http)
        self._token_url = token_url
        form = {
            "grant_type": "client_credentials",
            "scope": self._auth.scopes,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(token_url),
        }
        response = await _send(http, "POST", token_url, data=form)
        if response.status_code != 200:
            raise RemoteAuthFailed(f"token endpoint answered {response.status_code}")
        body = response.json()
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise RemoteAuthFailed("token endpoint sent no access_token")
        lifetime = body.get("expires_in", 300)
        lifetime = lifetime if isinstance(lifetime, int | float) else 300
        self._token = token
        self._expires_at = self._clock() + max(float(lifetime) - _EXPIRY_MARGIN_S, 1.0)

    async def _discover(self, http: httpx.AsyncClient) -> str:
        response = await _send(http, "GET", f"{self._base_url}/.well-known/smart-configuration")
        body = response.json() if response.status_code == 200 else {}
        token_url = body.get("token_endpoint") if isinstance(body, dict) else None
        if not isinstance(token_url, str):
            raise RemoteAuthFailed("no token_endpoint in .well-known/smart-configuration")
        return token_url


async def _send(http: httpx.AsyncClient, method: str, url: str, **kwargs: object) -> httpx.Response:
    try:
        response = await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        raise RemoteUnavailable("token-timeout") from None
    except httpx.TransportError:
        raise RemoteUnavailable("token-connect") from None
    if response.status_code in {429, 502, 503, 504}:
        raise RemoteUnavailable(f"token-http-{response.status_code}")
    return response


def authorizer_for(endpoint: EhrEndpoint) -> Authorizer:
    """The authorizer the endpoint's `auth` entry asks for."""
    auth = endpoint.auth
    if isinstance(auth, BearerAuth):
        return _BearerAuthorizer(auth)
    if isinstance(auth, SmartBackendAuth):
        return SmartBackendAuthorizer(auth, endpoint.base_url)
    return _NoAuthorizer()
