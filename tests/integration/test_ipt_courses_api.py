"""The IPT domain API at /ipt/v1: enrol, activate, sessions, practice, life cycle, reads.

Every domain call writes through the FHIR store, so the FHIR API shows the same course.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.ipt_helpers import (
    Clock,
    enrol,
    enrolment,
    fhir_read,
    patient,
    practitioner,
    read_ok,
    record,
    rows,
)

MRN = {"system": "urn:oid:2.16.840.1.113883.19.5", "value": "MRN-0042"}


async def course(client: httpx.AsyncClient, course_id: str) -> dict[str, Any]:
    return await read_ok(client, f"/ipt/v1/courses/{course_id}")


async def test_enrolment_writes_the_outline_as_fhir(ipt: httpx.AsyncClient) -> None:
    therapist = await practitioner(ipt)
    body = enrolment("Patient/x", therapist, conditions=["F33.1", "Z63.0"])
    body["patient"] = {"identifier": MRN, "family": "Rivera", "given": ["Alex"]}
    response = await ipt.post("/ipt/v1/courses", json=body)
    assert response.status_code == 201, response.text
    view = response.json()

    assert view["status"] == "draft"
    assert view["phase"] == "intake"
    assert view["therapist"] == therapist
    assert len(view["conditions"]) == 2
    careplan = await fhir_read(ipt, f"CarePlan/{view['id']}")
    assert careplan["subject"]["reference"] == view["patient"]
    assert careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["count"] == 20
    for reference in [*view["conditions"], view["symptom_goal"], view["patient"]]:
        await fhir_read(ipt, reference)
    assert view["interpersonal_goals"][0]["text"] == "Talk with my partner"

    again = await ipt.post("/ipt/v1/courses", json=body)  # same identifier: same Patient
    assert again.json()["patient"] == view["patient"]


async def test_a_course_through_its_life(ipt: httpx.AsyncClient, db: AsyncEngine) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)), activate=False)
    activated = await ipt.post(f"/ipt/v1/courses/{course_id}/activate")
    assert activated.json()["status"] == "active"
    assert activated.json()["phase"] == "initial"

    recorded = await record(
        ipt,
        course_id,
        start="2026-01-05T09:00:00Z",
        mode="virtual",
        phq9={"total": 16, "item9": 1},
        notes="Inventory of close relationships",
    )
    assert recorded["session"]["number"] == 1
    assert recorded["session"]["link_reason"] == "extension"
    kinds = sorted(ref.split("/")[0] for ref in recorded["resources"])
    assert kinds == ["CarePlan", "Encounter", "Observation", "Observation"]
    for reference in recorded["resources"]:
        await fhir_read(ipt, reference)
    encounter = await fhir_read(ipt, recorded["session"]["encounter"])
    assert encounter["class"]["code"] == "VR"

    held = await ipt.post(f"/ipt/v1/courses/{course_id}/hold", json={"reason": "Surgery"})
    assert held.json()["phase"] == "on-hold"
    resumed = await ipt.post(f"/ipt/v1/courses/{course_id}/resume")
    assert resumed.json()["status"] == "active"
    missed = await record(ipt, course_id, start="2026-01-12T09:00:00Z", outcome="no-show")
    assert missed["session"]["outcome"] == "no-show"
    assert missed["session"]["appointment"] is not None

    completed = (await ipt.post(f"/ipt/v1/courses/{course_id}/complete")).json()
    assert completed["phase"] == "completed"
    assert completed["end"] is not None
    assert [s["number"] for s in completed["sessions"]] == [1, None]
    assert len(await rows(db, "ipt_measure")) == 2  # baseline and the session's score


async def test_practice_assignments(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    url = f"/ipt/v1/courses/{course_id}/practice"
    first = await ipt.post(url, json={"description": "Call an old friend"})
    assert first.status_code == 201, first.text
    await ipt.post(url, json={"description": "Join the choir", "status": "in-progress"})
    patched = await ipt.patch(f"{url}/1", json={"status": "completed"})
    assert patched.status_code == 200, patched.text
    assert [(p["number"], p["status"]) for p in patched.json()["practice"]] == [
        (1, "completed"),
        (2, "in-progress"),
    ]
    careplan = await fhir_read(ipt, f"CarePlan/{course_id}")
    assert [a["detail"]["status"] for a in careplan["activity"][1:]] == ["completed", "in-progress"]
    assert (await ipt.patch(f"{url}/3", json={"status": "completed"})).status_code == 404


async def test_stop_keeps_the_reason(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    stopped = await ipt.post(f"/ipt/v1/courses/{course_id}/stop", json={"reason": "Moved away"})
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["status"], stopped.json()["phase"]) == ("revoked", "stopped")
    careplan = await fhir_read(ipt, f"CarePlan/{course_id}")
    assert careplan["note"][0]["text"] == "Course stopped: Moved away"
    assert "end" in careplan["period"]


async def test_maintenance_follows_a_completed_acute_course(
    ipt: httpx.AsyncClient, clock: Clock
) -> None:
    acute_id = await enrol(ipt, enrolment(await patient(ipt)))
    await ipt.post(f"/ipt/v1/courses/{acute_id}/complete")
    clock.now += timedelta(days=7)
    started = await ipt.post(f"/ipt/v1/courses/{acute_id}/maintenance", json={"months": 12})
    assert started.status_code == 201, started.text
    maintenance = started.json()
    assert maintenance["course_type"] == "maintenance"
    assert maintenance["based_on"] == acute_id
    assert (maintenance["cadence"], maintenance["planned_sessions"]) == ("monthly", 12)
    assert maintenance["status"] == "active"
    careplan = await fhir_read(ipt, f"CarePlan/{maintenance['id']}")
    assert careplan["basedOn"] == [{"reference": f"CarePlan/{acute_id}"}]
    assert careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["periodUnit"] == "mo"


async def test_an_acute_course_shows_its_maintenance_course(ipt: httpx.AsyncClient) -> None:
    acute_id = await enrol(ipt, enrolment(await patient(ipt)))
    await ipt.post(f"/ipt/v1/courses/{acute_id}/complete")
    started = (await ipt.post(f"/ipt/v1/courses/{acute_id}/maintenance")).json()
    acute = await course(ipt, acute_id)
    assert acute["maintenance_courses"] == [started["id"]]
    assert acute["phase"] == "maintenance"


async def test_courses_are_found_by_patient_therapist_and_phase(ipt: httpx.AsyncClient) -> None:
    therapist = await practitioner(ipt)
    first_patient = await patient(ipt)
    draft = await enrol(ipt, enrolment(first_patient, therapist), activate=False)
    active = await enrol(ipt, enrolment(await patient(ipt), therapist))
    await enrol(ipt, enrolment(await patient(ipt)))

    async def found(**params: str) -> list[str]:
        response = await ipt.get("/ipt/v1/courses", params=params)
        assert response.status_code == 200, response.text
        return sorted(c["id"] for c in response.json()["courses"])

    assert await found(therapist=therapist) == sorted([draft, active])
    assert await found(therapist=therapist.split("/")[1]) == sorted([draft, active])
    assert await found(patient=first_patient) == [draft]
    assert await found(phase="intake") == [draft]
    assert await found(phase="initial", therapist=therapist) == [active]
    assert len(await found()) == 3
    assert (await ipt.get("/ipt/v1/courses", params={"phase": "bogus"})).status_code == 400


async def test_reading_an_unknown_course_is_a_404(ipt: httpx.AsyncClient) -> None:
    response = await ipt.get("/ipt/v1/courses/nope")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    plain = await ipt.post(
        "/fhir/CarePlan",
        json={
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": "Patient/p"},
        },
        headers={"Content-Type": "application/fhir+json"},
    )
    assert (await ipt.get(f"/ipt/v1/courses/{plain.json()['id']}")).status_code == 404


async def test_the_domain_api_is_in_the_openapi_document(ipt: httpx.AsyncClient) -> None:
    document = (await ipt.get("/openapi.json")).json()
    paths = document["paths"]
    for path in (
        "/ipt/v1/courses",
        "/ipt/v1/courses/{course_id}",
        "/ipt/v1/courses/{course_id}/sessions",
        "/ipt/v1/courses/{course_id}/practice/{number}",
        "/ipt/v1/courses/{course_id}/maintenance",
        "/fhir/CodeSystem/{id}",
    ):
        assert path in paths, path
    enrolment_schema = document["components"]["schemas"]["EnrolmentRequest"]
    assert enrolment_schema["examples"]


async def test_the_domain_api_keeps_what_an_ehr_added(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    careplan = await fhir_read(ipt, f"CarePlan/{course_id}")
    ehr = {"url": "http://ehr.example.org/fhir/StructureDefinition/ward", "valueString": "B2"}
    category = {"coding": [{"system": "http://ehr.example.org/plan-kind", "code": "mh"}]}
    activity = {"detail": {"status": "scheduled", "description": "Medication review"}}
    careplan |= {
        "extension": [ehr],
        "category": [*careplan["category"], category],
        "activity": [*careplan["activity"], activity],
        "note": [{"text": "Prefers mornings"}],
    }
    stored = await ipt.put(
        f"/fhir/CarePlan/{course_id}",
        json=careplan,
        headers={"Content-Type": "application/fhir+json"},
    )
    assert stored.status_code == 200, stored.text

    await ipt.post(f"/ipt/v1/courses/{course_id}/hold", json={"reason": "Holiday"})
    held = await fhir_read(ipt, f"CarePlan/{course_id}")
    assert held["status"] == "on-hold"
    assert ehr in held["extension"]
    assert category in held["category"]
    assert activity in held["activity"]
    assert [note["text"] for note in held["note"]] == [
        "Prefers mornings",
        "Course put on hold: Holiday",
    ]
