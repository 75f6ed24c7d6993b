"""Bad input to IPT courses gets a clear 4xx OperationOutcome, and nothing is half-written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ipt_core.ipt import Course, course_to_careplan
from tests.integration.ipt_helpers import (
    ENCOUNTER_LINK,
    FHIR,
    IPT,
    course_link,
    encounter,
    enrol,
    enrolment,
    fhir_create,
    patient,
    phq9,
    record,
    refused,
    stored_versions,
)

SESSION = {"start": "2026-01-12T09:00:00Z", "minutes": 50, "outcome": "attended"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"problem_areas": ["loneliness"]}, "problem_areas"),
        ({"problem_areas": []}, "problem_areas"),
        ({"planned_sessions": 5}, "planned_sessions"),
        ({"planned_sessions": 31}, "planned_sessions"),
        ({"conditions": ["depression"]}, "conditions"),
        ({"baseline_phq9": {"total": 28}}, "baseline_phq9"),
        ({"start": "2026-01-05"}, "start"),  # an instant needs its time zone
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_an_invalid_outline_is_a_400(
    ipt: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    patient_ref = await patient(ipt)
    versions = await stored_versions(ipt)
    response = await ipt.post("/ipt/v1/courses", json=enrolment(patient_ref) | change)
    outcome = await refused(ipt, response, 400, versions)
    assert field in outcome["issue"][0]["expression"][0]


async def test_an_unknown_patient_or_goal_area_writes_nothing(ipt: httpx.AsyncClient) -> None:
    versions = await stored_versions(ipt)
    unknown = await ipt.post("/ipt/v1/courses", json=enrolment("Patient/nobody"))
    outcome = await refused(ipt, unknown, 422, versions)
    assert outcome["issue"][0]["expression"] == ["patient.reference"]

    # A new Patient and Conditions come before the refused goal: all are rolled back.
    body = enrolment("Patient/x", conditions=["F32.1"])
    body["patient"] = {"identifier": {"system": "urn:mrn", "value": "1"}}
    body["interpersonal_goals"] = [{"text": "Grieve my father", "problem_area": "grief"}]
    outcome = await refused(ipt, await ipt.post("/ipt/v1/courses", json=body), 422, versions)
    assert outcome["issue"][0]["expression"] == ["interpersonal_goals[0].problem_area"]


async def test_an_ipt_careplan_breaking_the_rules_is_a_422(ipt: httpx.AsyncClient) -> None:
    patient_ref = await patient(ipt)
    careplan = course_to_careplan(
        Course(id="x", patient=patient_ref, problem_areas=("grief",), start=datetime.now(UTC))
    )
    careplan["category"][3]["coding"][0]["code"] = "loneliness"
    careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]["count"] = 40
    versions = await stored_versions(ipt)
    response = await ipt.post("/fhir/CarePlan", json=careplan, headers=FHIR)
    outcome = await refused(ipt, response, 422, versions)
    found = {(issue["code"], issue["expression"][0]) for issue in outcome["issue"]}
    assert found == {
        ("business-rule", "CarePlan.category[3].coding[0].code"),
        ("business-rule", "CarePlan.category"),
        ("business-rule", "CarePlan.activity[0].detail.scheduledTiming.repeat.count"),
    }
    assert "[ipt-planned-sessions]" in outcome["issue"][-1]["diagnostics"]


async def test_a_maintenance_course_needs_an_acute_one(ipt: httpx.AsyncClient) -> None:
    patient_ref = await patient(ipt)
    maintenance = course_to_careplan(
        Course(
            id="x",
            patient=patient_ref,
            problem_areas=("grief",),
            start=datetime.now(UTC),
            course_type="maintenance",
            based_on="missing",
        )
    )
    versions = await stored_versions(ipt)
    response = await ipt.post("/fhir/CarePlan", json=maintenance, headers=FHIR)
    outcome = await refused(ipt, response, 422, versions)
    assert outcome["issue"][0]["expression"] == ["CarePlan.basedOn"]

    # Through the domain API: maintenance of a maintenance course, or of nothing.
    acute_id = await enrol(ipt, enrolment(patient_ref))
    await ipt.post(f"/ipt/v1/courses/{acute_id}/complete")
    started = await ipt.post(f"/ipt/v1/courses/{acute_id}/maintenance")
    assert started.status_code == 201, started.text
    versions = await stored_versions(ipt)
    again = await ipt.post(f"/ipt/v1/courses/{started.json()['id']}/maintenance")
    await refused(ipt, again, 422, versions)
    await refused(ipt, await ipt.post("/ipt/v1/courses/missing/maintenance"), 404, versions)


async def test_maintenance_before_the_acute_course_is_completed_is_a_409(
    ipt: httpx.AsyncClient,
) -> None:
    acute_id = await enrol(ipt, enrolment(await patient(ipt)))
    versions = await stored_versions(ipt)
    response = await ipt.post(f"/ipt/v1/courses/{acute_id}/maintenance")
    await refused(ipt, response, 409, versions)


async def test_a_session_for_another_patients_course_is_a_422(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    stranger = await patient(ipt, "Stranger")
    body = encounter(
        stranger, "2026-01-12T09:00:00Z", types=[IPT], **course_link(ENCOUNTER_LINK, course_id)
    )
    versions = await stored_versions(ipt)
    response = await ipt.post("/fhir/Encounter", json=body, headers=FHIR)
    outcome = await refused(ipt, response, 422, versions)
    assert outcome["issue"][0]["expression"] == ["Encounter.extension"]
    assert "[ipt-session-course]" in outcome["issue"][0]["diagnostics"]


async def test_a_phq9_out_of_range_is_a_422(ipt: httpx.AsyncClient) -> None:
    patient_ref = await patient(ipt)
    versions = await stored_versions(ipt)
    response = await ipt.post(
        "/fhir/Observation", json=phq9(patient_ref, "2026-01-05", 30), headers=FHIR
    )
    outcome = await refused(ipt, response, 422, versions)
    assert outcome["issue"][0]["expression"] == ["Observation.valueInteger"]


async def test_a_session_on_a_completed_or_draft_course_is_a_409(ipt: httpx.AsyncClient) -> None:
    completed = await enrol(ipt, enrolment(await patient(ipt)))
    await ipt.post(f"/ipt/v1/courses/{completed}/complete")
    draft = await enrol(ipt, enrolment(await patient(ipt)), activate=False)
    versions = await stored_versions(ipt)
    for course_id in (completed, draft):
        response = await ipt.post(f"/ipt/v1/courses/{course_id}/sessions", json=SESSION)
        outcome = await refused(ipt, response, 409, versions)
        assert outcome["issue"][0]["code"] == "business-rule"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start": "2026-01-01T09:00:00Z"}, "start"),  # before the course starts
        ({"start": "2026-12-01T09:00:00Z"}, "start"),  # after now
        ({"outcome": "no-show", "phq9": {"total": 4}}, "phq9"),
    ],
)
async def test_an_impossible_session_is_a_422(
    ipt: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    versions = await stored_versions(ipt)
    response = await ipt.post(f"/ipt/v1/courses/{course_id}/sessions", json=SESSION | change)
    outcome = await refused(ipt, response, 422, versions)
    assert outcome["issue"][0]["expression"] == [field]


async def test_state_changes_out_of_order_are_409s(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    versions = await stored_versions(ipt)
    for action in ("activate", "resume"):
        response = await ipt.post(f"/ipt/v1/courses/{course_id}/{action}")
        await refused(ipt, response, 409, versions)
    await ipt.post(f"/ipt/v1/courses/{course_id}/stop", json={"reason": "Moved"})
    versions = await stored_versions(ipt)
    for action in ("complete", "hold"):
        response = await ipt.post(f"/ipt/v1/courses/{course_id}/{action}")
        await refused(ipt, response, 409, versions)


async def test_an_idempotency_key_replays_and_refuses_reuse(ipt: httpx.AsyncClient) -> None:
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    url = f"/ipt/v1/courses/{course_id}/sessions"
    key = {"Idempotency-Key": "session-2026-01-12"}
    first = await ipt.post(url, json=SESSION, headers=key)
    assert first.status_code == 201, first.text
    versions = await stored_versions(ipt)

    replay = await ipt.post(url, json=SESSION, headers=key)
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await stored_versions(ipt) == versions

    reused = await ipt.post(url, json=SESSION | {"minutes": 45}, headers=key)
    outcome = await refused(ipt, reused, 422, versions)
    assert outcome["issue"][0]["expression"] == ["Idempotency-Key"]
    view = (await ipt.get(f"/ipt/v1/courses/{course_id}")).json()
    assert len(view["sessions"]) == 1

    later = SESSION | {"start": "2026-01-19T09:00:00Z"}
    without_key = await record(ipt, course_id, **later)  # no key: a second session
    assert without_key["session"]["number"] == 2


async def test_an_enrolment_is_idempotent_too(ipt: httpx.AsyncClient) -> None:
    body = enrolment(await patient(ipt))
    key = {"Idempotency-Key": "enrol-1"}
    first = await ipt.post("/ipt/v1/courses", json=body, headers=key)
    versions = await stored_versions(ipt)
    again = await ipt.post("/ipt/v1/courses", json=body, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    assert await stored_versions(ipt) == versions
    blank = await ipt.post("/ipt/v1/courses", json=body, headers={"Idempotency-Key": " "})
    await refused(ipt, blank, 400, versions)


async def test_conformance_resources_are_read_only(ipt: httpx.AsyncClient) -> None:
    body = {"resourceType": "CodeSystem", "status": "draft", "content": "complete"}
    response = await ipt.post("/fhir/CodeSystem", json=body, headers=FHIR)
    assert response.status_code == 405
    assert (await ipt.get("/fhir/CodeSystem/nope")).status_code == 404
    assert (await fhir_create(ipt, {"resourceType": "Patient"}))["id"]
