"""The worked example of docs/status-rules.md, through /ipt/v1 and as raw FHIR, is one course.

The raw FHIR course links its sessions by each of the three linking rules: the `basedOn`
extension, the CarePlan's `outcomeReference`, and auto-linking by type and period. Both
paths must give the same projections and the example's status.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.ipt_helpers import (
    APPOINTMENT_LINK,
    CPT,
    ENCOUNTER_LINK,
    IPT,
    SNOMED,
    appointment,
    course_link,
    encounter,
    enrol,
    enrolment,
    fhir_create,
    fhir_read,
    fhir_update,
    patient,
    phq9,
    practitioner,
    record,
    rows,
)

MONDAYS = ["2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26", "2026-02-02", "2026-02-09",
           "2026-02-16", "2026-02-23"]  # fmt: skip
NO_SHOW = "2026-03-02T09:00:00Z"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
COURSE_TYPE = "http://fhir.ipt-care.org/CodeSystem/ipt-course-type"
PROBLEM_AREA = "http://fhir.ipt-care.org/CodeSystem/ipt-problem-area"
PHQ9 = {"2026-02-02": 12, "2026-02-23": 9}


async def through_domain_api(client: httpx.AsyncClient, therapist: str) -> str:
    patient_ref = await patient(client, "Domain")
    course_id = await enrol(client, enrolment(patient_ref, therapist))
    for day in MONDAYS:
        score = {"phq9": {"total": PHQ9[day], "item9": 0}} if day in PHQ9 else {}
        await record(client, course_id, start=f"{day}T09:00:00Z", **score)
    await record(client, course_id, start=NO_SHOW, outcome="no-show")
    return course_id


async def as_raw_fhir(client: httpx.AsyncClient, therapist: str) -> str:
    patient_ref = await patient(client, "Raw")
    condition = await fhir_create(client, _condition(patient_ref))
    goals = [
        await fhir_create(client, _symptom_goal(patient_ref)),
        await fhir_create(client, _interpersonal_goal(patient_ref)),
    ]
    careplan = await fhir_create(client, _careplan(patient_ref, therapist, condition, goals))
    course_id = careplan["id"]
    await fhir_create(client, phq9(patient_ref, "2026-01-05T09:00:00Z", 18, item9=0))
    listed = []
    for index, day in enumerate(MONDAYS):
        start = f"{day}T09:00:00Z"
        if index < 3:  # rule 1: the basedOn extension
            body = encounter(
                patient_ref, start, types=[IPT], **course_link(ENCOUNTER_LINK, course_id)
            )
        elif index < 5:  # rule 3: auto-linked by IPT type and the course period
            body = encounter(patient_ref, start, types=[{"system": CPT, "code": "90837"}])
        else:  # rule 2: a generic psychotherapy Encounter the CarePlan lists
            body = encounter(patient_ref, start, types=[{"system": SNOMED, "code": "75516001"}])
            if index == 7:  # booked first: the Appointment, then the Encounter of it
                booked = await fhir_create(
                    client,
                    appointment(
                        patient_ref, start, "fulfilled", **course_link(APPOINTMENT_LINK, course_id)
                    ),
                )
                body["appointment"] = [{"reference": f"Appointment/{booked['id']}"}]
        created = await fhir_create(client, body)
        if index >= 5:
            listed.append(f"Encounter/{created['id']}")
        if day in PHQ9:
            score = phq9(patient_ref, start, PHQ9[day], item9=0)
            await fhir_create(
                client, score | {"encounter": {"reference": f"Encounter/{created['id']}"}}
            )
    await fhir_create(client, appointment(patient_ref, NO_SHOW, "noshow"))
    careplan["activity"][0]["outcomeReference"] = [{"reference": ref} for ref in listed]
    await fhir_update(client, careplan)
    return str(course_id)


async def test_both_paths_give_the_same_course(ipt: httpx.AsyncClient, db: AsyncEngine) -> None:
    therapist = await practitioner(ipt)
    domain_id = await through_domain_api(ipt, therapist)
    raw_id = await as_raw_fhir(ipt, therapist)

    domain, raw = await course_row(db, domain_id), await course_row(db, raw_id)
    assert domain == raw
    assert (domain["planned_sessions"], domain["status"]) == (20, "active")

    domain_view = (await ipt.get(f"/ipt/v1/courses/{domain_id}")).json()
    raw_view = (await ipt.get(f"/ipt/v1/courses/{raw_id}")).json()
    assert sessions_of(domain_view) == sessions_of(raw_view)
    assert [s["number"] for s in raw_view["sessions"]] == [1, 2, 3, 4, 5, 6, 7, 8, None]
    assert raw_view["sessions_attended"] == 8
    assert without_ids(domain_view) == without_ids(raw_view)

    assert await measures(db, domain_id) == await measures(db, raw_id)
    assert len(await measures(db, raw_id)) == 3


async def test_the_raw_course_is_linked_by_all_three_rules(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    raw_id = await as_raw_fhir(ipt, await practitioner(ipt))

    found = await rows(db, "ipt_session", "course_id = :id", id=raw_id)
    reasons = sorted((row.resource_type, str(row.start.date()), row.link_reason) for row in found)
    assert reasons == [
        ("Appointment", "2026-02-23", "extension"),
        ("Appointment", "2026-03-02", "auto"),
        ("Encounter", "2026-01-05", "extension"),
        ("Encounter", "2026-01-12", "extension"),
        ("Encounter", "2026-01-19", "extension"),
        ("Encounter", "2026-01-26", "auto"),
        ("Encounter", "2026-02-02", "auto"),
        ("Encounter", "2026-02-09", "outcome-reference"),
        ("Encounter", "2026-02-16", "outcome-reference"),
        ("Encounter", "2026-02-23", "outcome-reference"),
    ]


async def test_both_paths_have_the_worked_examples_status(ipt: httpx.AsyncClient) -> None:
    therapist = await practitioner(ipt)
    statuses = []
    for course_id in (await through_domain_api(ipt, therapist), await as_raw_fhir(ipt, therapist)):
        response = await ipt.get(f"/ipt/v1/courses/{course_id}/status")
        assert response.status_code == 200, response.text
        statuses.append({k: v for k, v in response.json().items() if k not in {"computed_at"}})
    assert statuses[0] == statuses[1]
    status = statuses[0]
    expected = {
        "sessions_attended": 8,
        "sessions_no_show": 1,
        "phase": "middle",
        "next_session_number": 9,
        "phq9_baseline": 18,
        "phq9_latest": 9,
        "response": True,
        "remission": False,
    }
    assert {key: status[key] for key in expected} == expected
    assert status["engagement"] == "on-track"


async def test_every_resource_the_domain_api_wrote_is_valid_r4(ipt: httpx.AsyncClient) -> None:
    course_id = await through_domain_api(ipt, await practitioner(ipt))
    history = (await ipt.get("/fhir/_history?_count=1000")).json()
    references = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in history["entry"]
        if "resource" in e
    }
    assert {ref.split("/")[0] for ref in references} >= {
        "CarePlan", "Goal", "Condition", "Encounter", "Appointment", "Observation"
    }  # fmt: skip
    for reference in sorted(references):
        await fhir_read(ipt, reference)  # the client checks each body with fhirkit
    careplan = await fhir_read(ipt, f"CarePlan/{course_id}")
    assert len(careplan["activity"][0]["outcomeReference"]) == 9


async def course_row(db: AsyncEngine, course_id: str) -> dict[str, Any]:
    (row,) = await rows(db, "ipt_course", "id = :id", id=course_id)
    found = dict(row._mapping)
    for key in ("id", "patient_id", "symptom_goal_id"):
        assert found.pop(key)
    return found


async def measures(db: AsyncEngine, course_id: str) -> list[tuple[Any, ...]]:
    (course,) = await rows(db, "ipt_course", "id = :id", id=course_id)
    found = await rows(db, "ipt_measure", "patient_id = :p", p=course.patient_id)
    return sorted((m.code, m.status, m.effective, m.value, m.item9, m.members) for m in found)


def sessions_of(view: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s["number"], s["outcome"], s["start"], s["minutes"]) for s in view["sessions"]]


def without_ids(view: dict[str, Any]) -> dict[str, Any]:
    kept = {
        k: v
        for k, v in view.items()
        if k not in {"id", "identifier", "patient", "conditions", "symptom_goal", "sessions"}
    }
    kept["interpersonal_goals"] = [{**g, "id": None} for g in view["interpersonal_goals"]]
    return kept


def _condition(patient_ref: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}]},
        "subject": {"reference": patient_ref},
    }


def _symptom_goal(patient_ref: str) -> dict[str, Any]:
    measure = {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]}
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "Remission"},
        "subject": {"reference": patient_ref},
        "target": [{"measure": measure, "detailQuantity": {"value": 5, "comparator": "<"}}],
    }


def _interpersonal_goal(patient_ref: str) -> dict[str, Any]:
    area = {
        "system": "http://fhir.ipt-care.org/CodeSystem/ipt-problem-area",
        "code": "role-dispute",
    }
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "category": [{"coding": [area]}],
        "description": {"text": "Talk with my partner"},
        "subject": {"reference": patient_ref},
    }


def _careplan(
    patient_ref: str, therapist: str, condition: dict[str, Any], goals: list[dict[str, Any]]
) -> dict[str, Any]:
    category = [
        {"coding": [{"system": US_CORE_CATEGORY, "code": "assess-plan"}]},
        {"coding": [IPT]},
        {"coding": [{"system": COURSE_TYPE, "code": "acute"}]},
        {"coding": [{"system": PROBLEM_AREA, "code": "role-dispute"}]},
    ]
    repeat = {
        "count": 20,
        "duration": 60,
        "durationUnit": "min",
        "frequency": 1,
        "period": 1,
        "periodUnit": "wk",
    }
    return {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": category,
        "subject": {"reference": patient_ref},
        "period": {"start": "2026-01-05T09:00:00Z"},
        "author": {"reference": therapist},
        "addresses": [{"reference": f"Condition/{condition['id']}"}],
        "goal": [{"reference": f"Goal/{goal['id']}"} for goal in goals],
        "activity": [
            {
                "detail": {
                    "code": {"coding": [IPT]},
                    "status": "in-progress",
                    "scheduledTiming": {"repeat": repeat},
                }
            }
        ],
    }
