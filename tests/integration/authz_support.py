"""Fixtures of the authorization tests: an app in JWT mode and tokens minted for it.

Tokens are signed with the throwaway key of tests/support/tokens.py, whose public half the app
reads as its JWKS file. The records these tests reach for are made by authz_records.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.integration.ipt_helpers import WORKED_NOW, Clock
from tests.support.tokens import jwt_api_settings, signed_token

ISSUER = "https://idp.authz.example"
AUDIENCE = "https://ipt.authz.example/fhir"
FHIR = {"Content-Type": "application/fhir+json"}
ADMIN = "system/*.* system/AuditEvent.rs"
Mint = Callable[..., str]


@dataclass
class Secured:
    """The app under test and an HTTP client of it."""

    app: FastAPI
    http: httpx.AsyncClient

    async def flush_audit(self) -> None:
        """Write the batched read records now."""
        await self.app.state.audit_buffer.flush()


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> Mint:
    def make(scope: str, **claims: object) -> str:
        return signed_token(signing_key, ISSUER, AUDIENCE, "clinician-7", scope, claims=claims)

    return make


@pytest.fixture
async def secured(
    db: AsyncEngine, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> AsyncIterator[Secured]:
    settings = jwt_api_settings(signing_key, tmp_path, issuer=ISSUER, audience=AUDIENCE)
    app = create_app(settings, database=Database(db), clock=Clock(WORKED_NOW))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Secured(app, client)


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}
