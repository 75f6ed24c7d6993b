"""Small valid resources of every stored type, linked to a patient, created through the
JWT-mode API of tests/integration/authz_support.py: the records the authorization tests reach for.
"""

from __future__ import annotations

from typing import Any

from tests.integration.authz_support import FHIR, Secured, bearer


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
