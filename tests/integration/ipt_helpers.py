"""Fixtures and helpers of the IPT course tests: an app on a settable clock, FHIR bodies, rows.

The clock starts at the "now" of the docs/status-rules.md worked example, 2026-03-04T12:00Z, so the
example's sessions are in the past and its status is the one the example gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.app import create_app
from ipt_core.db.provision import Database
from tests.support.api import api_settings, checked_client

FHIR = {"Content-Type": "application/fhir+json"}
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
IPT = {"system": SNOMED, "code": "443730003"}
ENCOUNTER_LINK = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Encounter.basedOn"
APPOINTMENT_LINK = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.basedOn"
PHASE_EXTENSION = "http://fhir.ipt-care.org/StructureDefinition/ipt-phase"
WORKED_NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)


class Clock:
    """A clock tests can set: the app's store stamps writes with it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The app's clock, at the worked example's now."""
    return Clock(WORKED_NOW)


@pytest.fixture
async def ipt(db: AsyncEngine, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on `clock`; every FHIR response is checked by fhirkit."""
    application: FastAPI = create_app(api_settings(), database=Database(db), clock=clock)
    async with LifespanManager(application), checked_client(application) as http:
        yield http


async def fhir_create(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """POST a resource to /fhir; it must be created."""
    response = await client.post(f"/fhir/{body['resourceType']}", json=body, headers=FHIR)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def fhir_update(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """PUT a resource to /fhir; it must be stored."""
    url = f"/fhir/{body['resourceType']}/{body['id']}"
    response = await client.put(url, json=body, headers=FHIR)
    assert response.status_code in (200, 201), response.text
    stored: dict[str, Any] = response.json()
    return stored


async def fhir_read(client: httpx.AsyncClient, reference: str) -> dict[str, Any]:
    """GET `Type/id` from /fhir; it must exist (and is checked by fhirkit on the way)."""
    return await read_ok(client, f"/fhir/{reference}")


async def read_ok(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """GET `url`; it must answer 200 with a JSON object, which is returned."""
    response = await client.get(url)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def practitioner(client: httpx.AsyncClient) -> str:
    """A therapist, as `Practitioner/{id}`."""
    created = await fhir_create(
        client, {"resourceType": "Practitioner", "name": [{"family": "Therapist"}]}
    )
    return f"Practitioner/{created['id']}"


async def patient(client: httpx.AsyncClient, family: str = "Test") -> str:
    """A patient, as `Patient/{id}`."""
    created = await fhir_create(client, {"resourceType": "Patient", "name": [{"family": family}]})
    return f"Patient/{created['id']}"


def enrolment(patient_ref: str, therapist: str | None = None, **changes: Any) -> dict[str, Any]:
    """An enrolment body (the worked example's course) with `changes` applied."""
    body: dict[str, Any] = {
        "patient": {"reference": patient_ref},
        "conditions": ["F32.1"],
        "problem_areas": ["role-dispute"],
        "planned_sessions": 20,
        "session_minutes": 60,
        "start": "2026-01-05T09:00:00Z",
        "interpersonal_goals": [{"text": "Talk with my partner", "problem_area": "role-dispute"}],
        "baseline_phq9": {"total": 18, "item9": 0},
    }
    if therapist is not None:
        body["therapist"] = therapist
    return body | changes


async def enrol(client: httpx.AsyncClient, body: dict[str, Any], *, activate: bool = True) -> str:
    """Enrol through /ipt/v1 (and activate); return the course id."""
    response = await client.post("/ipt/v1/courses", json=body)
    assert response.status_code == 201, response.text
    course_id: str = response.json()["id"]
    if activate:
        activated = await client.post(f"/ipt/v1/courses/{course_id}/activate")
        assert activated.status_code == 200, activated.text
    return course_id


async def record(client: httpx.AsyncClient, course_id: str, **session: Any) -> dict[str, Any]:
    """Record a session through /ipt/v1; it must succeed."""
    body = {"minutes": 60, "outcome": "attended"} | session
    response = await client.post(f"/ipt/v1/courses/{course_id}/sessions", json=body)
    assert response.status_code == 201, response.text
    recorded: dict[str, Any] = response.json()
    return recorded


async def stored_versions(client: httpx.AsyncClient) -> int:
    """How many resource versions the store holds."""
    history = (await client.get("/fhir/_history?_count=1000")).json()
    return len(history.get("entry", []))


async def refused(
    client: httpx.AsyncClient, response: httpx.Response, status: int = 400, versions: int = 0
) -> dict[str, Any]:
    """The answer is a `status` OperationOutcome, and the store still holds `versions`."""
    assert response.status_code == status, response.text
    outcome: dict[str, Any] = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert await stored_versions(client) == versions
    return outcome


async def rows(db: AsyncEngine, table: str, where: str = "TRUE", **params: Any) -> list[Any]:
    """The rows of a projection table matching `where`."""
    async with db.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {table} WHERE {where}"), params)
        return list(result)


async def recompute_generations(db: AsyncEngine) -> dict[str, int]:
    """Each queued course's request generation (bumped by every new request)."""
    return {row.course_id: row.generation for row in await rows(db, "recompute_request")}


def encounter(
    patient_ref: str, start: str, *, types: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    """An attended Encounter of one hour as an EHR might send it."""
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": ACT, "code": "AMB"},
        "type": [{"coding": [coding]} for coding in types],
        "subject": {"reference": patient_ref},
        "period": {"start": start, "end": start.replace("T09:00", "T10:00")},
        **extra,
    }


def appointment(patient_ref: str, start: str, status: str, **extra: Any) -> dict[str, Any]:
    """An IPT Appointment of one hour as an EHR might send it."""
    return {
        "resourceType": "Appointment",
        "status": status,
        "serviceType": [{"coding": [IPT]}],
        "start": start,
        "end": start.replace("T09:00", "T10:00"),
        "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}],
        **extra,
    }


def course_link(extension_url: str, course_id: str) -> dict[str, Any]:
    """The explicit course link (linking rule 1)."""
    return {
        "extension": [
            {"url": extension_url, "valueReference": {"reference": f"CarePlan/{course_id}"}}
        ]
    }


def phq9(patient_ref: str, when: str, total: int, item9: int | None = None) -> dict[str, Any]:
    """A PHQ-9 total Observation, item 9 as a component."""
    observation: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "44261-6"}]},
        "subject": {"reference": patient_ref},
        "effectiveDateTime": when,
        "valueInteger": total,
    }
    if item9 is not None:
        observation["component"] = [
            {"code": {"coding": [{"system": LOINC, "code": "44260-8"}]}, "valueInteger": item9}
        ]
    return observation
