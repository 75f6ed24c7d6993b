"""Fixtures of the authorization tests: an app in JWT mode, tokens minted against a local JWKS,
and small valid resources of every stored type, linked to a patient.

Tokens are signed with a throwaway RSA key whose public half the app reads as its JWKS file,
exactly as tests/integration/test_auth.py does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.integration.ipt_helpers import WORKED_NOW, Clock
from tests.support.api import api_settings

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


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def mint(signing_key: rsa.RSAPrivateKey) -> Mint:
    def make(scope: str, **claims: object) -> str:
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "clinician-7",
            "exp": int(time.time()) + 300,
            "scope": scope,
            **claims,
        }
        return jwt.encode(payload, signing_key, algorithm="RS384", headers={"kid": "k1"})

    return make


@pytest.fixture
async def secured(
    db: AsyncEngine, signing_key: rsa.RSAPrivateKey, tmp_path: Path
) -> AsyncIterator[Secured]:
    public = json.loads(RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig"}]}))
    settings = api_settings(
        auth_mode="jwt", auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks=str(jwks)
    )
    app = create_app(settings, database=Database(db), clock=Clock(WORKED_NOW))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Secured(app, client)


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def resource_of(resource_type: str, patient: str) -> dict[str, Any]:
    """A small valid resource of `resource_type` in `patient`'s compartment (when it can be)."""
    subject = {"reference": f"Patient/{patient}"}
    bodies: dict[str, dict[str, Any]] = {
        "Patient": {"name": [{"family": "Authz"}]},
        "Practitioner": {"name": [{"family": "Therapist"}]},
        "Observation": {
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
            "subject": subject,
            "effectiveDateTime": "2026-02-01T10:00:00Z",
            "valueInteger": 12,
        },
        "Condition": {
            "subject": subject,
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32.1"}]},
        },
        "CarePlan": {"status": "draft", "intent": "plan", "subject": subject},
        "Goal": {
            "lifecycleStatus": "active",
            "description": {"text": "Sleep better"},
            "subject": subject,
        },
        "Encounter": {
            "status": "finished",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": subject,
        },
        "Appointment": {
            "status": "booked",
            "participant": [{"actor": subject, "status": "accepted"}],
        },
    }
    return {"resourceType": resource_type, **bodies[resource_type]}


async def create(
    secured: Secured, token: str, resource_type: str, patient: str = "none", **extra: Any
) -> str:
    """Create a resource with `token`; return its id."""
    body = resource_of(resource_type, patient) | extra
    response = await secured.http.post(
        f"/fhir/{resource_type}", json=body, headers=bearer(token, **FHIR)
    )
    assert response.status_code == 201, response.text
    created: str = response.json()["id"]
    return created


async def patient_record(secured: Secured, token: str) -> dict[str, str]:
    """A Patient and one resource of each compartment type referring to it: type -> id."""
    patient = await create(secured, token, "Patient")
    ids = {"Patient": patient}
    for resource_type in ("Observation", "Condition", "CarePlan", "Goal", "Encounter"):
        ids[resource_type] = await create(secured, token, resource_type, patient)
    ids["Appointment"] = await create(secured, token, "Appointment", patient)
    return ids
