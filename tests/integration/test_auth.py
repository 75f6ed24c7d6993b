"""SMART bearer tokens: signature, issuer, audience, expiry and scopes, per interaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings
from tests.support.tokens import jwt_api_settings, new_signing_key, signed_token

ISSUER = "https://idp.test.example"
AUDIENCE = "https://ipt.test.example/fhir"
FHIR = {"Content-Type": "application/fhir+json"}
Mint = Callable[..., str]


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> Mint:
    def make(scope: str, *, issuer: str = ISSUER, expires_in: int = 300, **claims: object) -> str:
        subject = "integration-engine"
        return signed_token(
            signing_key, issuer, AUDIENCE, subject, scope, expires_in=expires_in, claims=claims
        )

    return make


@pytest.fixture
async def secured(
    db: AsyncEngine, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = jwt_api_settings(signing_key, tmp_path, issuer=ISSUER, audience=AUDIENCE)
    app = create_app(settings, database=Database(db))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_is_401_with_challenge(secured: httpx.AsyncClient) -> None:
    response = await secured.get("/fhir/Patient/x")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["issue"][0]["code"] == "login"


async def test_metadata_needs_no_token(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/fhir/metadata")).status_code == 200


async def test_read_scope_reads_but_does_not_write(secured: httpx.AsyncClient, mint: Mint) -> None:
    token = mint("system/*.read")
    assert (await secured.get("/fhir/Patient/x", headers=bearer(token))).status_code == 404
    response = await secured.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={**FHIR, **bearer(token)}
    )
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"


async def test_v2_scopes_per_type(secured: httpx.AsyncClient, mint: Mint) -> None:
    token = mint("system/Patient.cr")
    created = await secured.post(
        "/fhir/Patient", json={"resourceType": "Patient"}, headers={**FHIR, **bearer(token)}
    )
    assert created.status_code == 201
    other_type = await secured.post(
        "/fhir/Practitioner",
        json={"resourceType": "Practitioner"},
        headers={**FHIR, **bearer(token)},
    )
    assert other_type.status_code == 403
    delete = await secured.delete(f"/fhir/Patient/{created.json()['id']}", headers=bearer(token))
    assert delete.status_code == 403


@pytest.mark.parametrize(
    "claims",
    [
        {"issuer": "https://evil.example"},
        {"expires_in": -60},
    ],
)
async def test_invalid_tokens_are_401(
    secured: httpx.AsyncClient, mint: Mint, claims: dict[str, object]
) -> None:
    token = mint("system/*.*", **claims)
    assert (await secured.get("/fhir/Patient/x", headers=bearer(token))).status_code == 401


async def test_token_signed_by_another_key_is_401(secured: httpx.AsyncClient) -> None:
    stranger = new_signing_key()
    token = signed_token(stranger, ISSUER, AUDIENCE, "x", "system/*.*", expires_in=60)
    assert (await secured.get("/fhir/Patient/x", headers=bearer(token))).status_code == 401


async def test_garbage_token_is_401(secured: httpx.AsyncClient) -> None:
    assert (await secured.get("/fhir/Patient/x", headers=bearer("not.a.jwt"))).status_code == 401


def test_disabled_auth_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="local development only"):
        api_settings(auth_mode="disabled", api_host="0.0.0.0")
