"""Session linking (docs/fhir-mapping.md) and the projections' upkeep, through the FHIR API.

Auto-links are decided when the session is written and kept by course writes; explicit links
(extension, outcomeReference) win; sessions in error or deleted leave the projection; the
status engine's own write-backs never queue a recompute, real changes always do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.fhir.model import WriteCause
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import Course, course_to_careplan
from tests.integration.ipt_helpers import (
    ENCOUNTER_LINK,
    IPT,
    PHASE_EXTENSION,
    course_link,
    encounter,
    fhir_create,
    fhir_read,
    fhir_update,
    patient,
    phq9,
    recompute_generations,
    rows,
)

JAN_5 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def careplan(patient_ref: str, **changes: Any) -> dict[str, Any]:
    """An active acute IPT course CarePlan from 2026-01-05, as the mapping builds it."""
    fields: dict[str, Any] = {
        "id": "new",
        "status": "active",
        "patient": patient_ref,
        "problem_areas": ("grief",),
        "start": JAN_5,
    }
    built = course_to_careplan(Course.model_validate(fields | changes))
    del built["id"]
    return built


async def session_link(db: AsyncEngine, encounter_id: str) -> tuple[Any, Any] | None:
    found = await rows(db, "ipt_session", "resource_id = :id", id=encounter_id)
    return (found[0].course_id, found[0].link_reason) if found else None


async def ipt_encounter(client: httpx.AsyncClient, patient_ref: str, day: str, **extra: Any) -> str:
    body = encounter(patient_ref, f"2026-{day}T09:00:00Z", types=[IPT], **extra)
    return str((await fhir_create(client, body))["id"])


async def test_an_auto_link_is_kept_when_the_course_completes(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course = await fhir_create(ipt, careplan(patient_ref))
    session = await ipt_encounter(ipt, patient_ref, "02-02")
    assert await session_link(db, session) == (course["id"], "auto")

    # Completed, with an end before the session: the rule would not link it now, but a
    # course write never moves an auto-link.
    course |= {"status": "completed", "period": {"start": "2026-01-05", "end": "2026-01-31"}}
    await fhir_update(ipt, course)
    assert await session_link(db, session) == (course["id"], "auto")
    view = (await ipt.get(f"/ipt/v1/courses/{course['id']}")).json()
    assert [s["number"] for s in view["sessions"]] == [1]


async def test_completing_through_the_domain_api_keeps_auto_linked_sessions(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course = await fhir_create(ipt, careplan(patient_ref))
    session = await ipt_encounter(ipt, patient_ref, "01-12")
    completed = await ipt.post(f"/ipt/v1/courses/{course['id']}/complete")
    assert completed.status_code == 200, completed.text
    assert completed.json()["status"] == "completed"
    assert completed.json()["end"] is not None
    assert await session_link(db, session) == (course["id"], "auto")


async def test_a_second_active_course_makes_a_new_session_ambiguous(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    first = await fhir_create(ipt, careplan(patient_ref))
    before = await ipt_encounter(ipt, patient_ref, "01-12")
    await fhir_create(ipt, careplan(patient_ref, problem_areas=("role-dispute",)))
    after = await ipt_encounter(ipt, patient_ref, "01-19")

    assert await session_link(db, before) == (first["id"], "auto")  # kept: a course write
    assert await session_link(db, after) == (None, None)  # two candidates: no auto-link
    (row,) = await rows(db, "ipt_session", "resource_id = :id", id=after)
    assert row.is_ipt is True


async def test_an_explicit_link_overrides_the_auto_link(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    auto = await fhir_create(ipt, careplan(patient_ref))
    other = await fhir_create(
        ipt, careplan(patient_ref, status="completed", end=datetime(2026, 1, 6, tzinfo=UTC))
    )
    session_id = await ipt_encounter(ipt, patient_ref, "02-02")
    assert await session_link(db, session_id) == (auto["id"], "auto")

    # Rule 2: the other course lists the session.
    other["activity"][0]["outcomeReference"] = [{"reference": f"Encounter/{session_id}"}]
    other = await fhir_update(ipt, other)
    assert await session_link(db, session_id) == (other["id"], "outcome-reference")

    # Rule 1 beats rule 2: the session names its course itself.
    session = await fhir_read(ipt, f"Encounter/{session_id}")
    await fhir_update(ipt, session | course_link(ENCOUNTER_LINK, auto["id"]))
    assert await session_link(db, session_id) == (auto["id"], "extension")

    # Without the extension it is the other course's again; once no longer listed, the
    # session is linked afresh by the period (auto).
    await fhir_update(ipt, session)
    assert await session_link(db, session_id) == (other["id"], "outcome-reference")
    other["activity"][0].pop("outcomeReference")
    await fhir_update(ipt, other)
    assert await session_link(db, session_id) == (auto["id"], "auto")


async def test_deleting_or_marking_in_error_removes_the_session(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course = await fhir_create(ipt, careplan(patient_ref))
    deleted = await ipt_encounter(ipt, patient_ref, "01-12")
    in_error = await ipt_encounter(ipt, patient_ref, "01-19")
    assert len(await rows(db, "ipt_session", "course_id = :id", id=course["id"])) == 2

    assert (await ipt.delete(f"/fhir/Encounter/{deleted}")).status_code == 200
    session = await fhir_read(ipt, f"Encounter/{in_error}")
    await fhir_update(ipt, session | {"status": "entered-in-error"})

    assert await rows(db, "ipt_session", "course_id = :id", id=course["id"]) == []
    view = (await ipt.get(f"/ipt/v1/courses/{course['id']}")).json()
    assert view["sessions"] == []


async def test_a_phq9_in_error_leaves_the_measures(ipt: httpx.AsyncClient, db: AsyncEngine) -> None:
    patient_ref = await patient(ipt)
    score = await fhir_create(ipt, phq9(patient_ref, "2026-01-05T09:00:00Z", 12))
    assert len(await rows(db, "ipt_measure")) == 1
    await fhir_update(ipt, score | {"status": "entered-in-error"})
    assert await rows(db, "ipt_measure") == []


async def test_status_write_backs_do_not_queue_a_recompute(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course_id = await _domain_course(ipt, patient_ref)
    course = await fhir_read(ipt, f"CarePlan/{course_id}")
    goal = await fhir_read(ipt, course["goal"][0]["reference"])
    await _clear_queue(db)

    phase = {"system": "http://fhir.ipt-care.org/CodeSystem/ipt-phase", "code": "initial"}
    phased = course | {"extension": [{"url": PHASE_EXTENSION, "valueCoding": phase}]}
    achieved = {"coding": [{"system": GOAL_ACHIEVEMENT, "code": "improving"}]}
    await _write_back(db, phased, goal | {"achievementStatus": achieved})
    assert await recompute_generations(db) == {}

    # The same change made by a client is a client's write: the projections see it.
    current = await fhir_read(ipt, f"CarePlan/{course_id}")
    await fhir_update(ipt, current | {"description": "A real change"})
    assert set(await recompute_generations(db)) == {course_id}
    await _clear_queue(db)
    goal = await fhir_read(ipt, course["goal"][0]["reference"])
    await fhir_update(ipt, goal | {"lifecycleStatus": "on-hold"})
    assert set(await recompute_generations(db)) == {course_id}


async def _write_back(db: AsyncEngine, *resources: dict[str, Any]) -> None:
    """Write `resources` as the status engine does: cause `STATUS_WRITEBACK`, every listener."""
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), cause=WriteCause.STATUS_WRITEBACK)
        for resource in resources:
            body = {k: v for k, v in resource.items() if k != "meta"}
            await store.update(resource["resourceType"], resource["id"], body)


async def test_real_changes_queue_the_courses_they_concern(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    acute = await fhir_create(ipt, careplan(patient_ref, status="completed", end=JAN_5))
    maintenance = await fhir_create(
        ipt, careplan(patient_ref, course_type="maintenance", based_on=acute["id"], start=JAN_5)
    )
    await _clear_queue(db)
    await fhir_create(ipt, phq9(patient_ref, "2026-01-20T09:00:00Z", 7))  # the patient's value
    assert set(await recompute_generations(db)) == {acute["id"], maintenance["id"]}

    await _clear_queue(db)
    await fhir_update(ipt, acute | {"description": "Acute course"})
    assert set(await recompute_generations(db)) == {acute["id"], maintenance["id"]}

    await _clear_queue(db)
    await ipt_encounter(ipt, patient_ref, "02-02")  # auto-linked to the active maintenance
    assert set(await recompute_generations(db)) == {maintenance["id"]}


async def test_a_recurrent_condition_flags_the_courses_addressing_it(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course_id = await _domain_course(ipt, patient_ref)
    (course,) = await rows(db, "ipt_course", "id = :id", id=course_id)
    assert course.recurrent is False
    careplan_json = await fhir_read(ipt, f"CarePlan/{course_id}")
    condition = await fhir_read(ipt, careplan_json["addresses"][0]["reference"])
    await _clear_queue(db)

    condition["code"]["coding"][0]["code"] = "F33.1"
    await fhir_update(ipt, condition)
    (course,) = await rows(db, "ipt_course", "id = :id", id=course_id)
    assert course.recurrent is True
    assert set(await recompute_generations(db)) == {course_id}


async def test_an_encounter_of_an_appointment_is_one_session(
    ipt: httpx.AsyncClient, db: AsyncEngine
) -> None:
    patient_ref = await patient(ipt)
    course = await fhir_create(ipt, careplan(patient_ref))
    booked = await fhir_create(
        ipt,
        {
            "resourceType": "Appointment",
            "status": "booked",
            "serviceType": [{"coding": [IPT]}],
            "start": "2026-01-12T09:00:00Z",
            "end": "2026-01-12T10:00:00Z",
            "participant": [{"actor": {"reference": patient_ref}, "status": "accepted"}],
        },
    )
    plain = encounter(patient_ref, "2026-01-12T09:05:00Z", types=[])
    del plain["type"]
    plain["appointment"] = [{"reference": f"Appointment/{booked['id']}"}]
    held = await fhir_create(ipt, plain)

    (row,) = await rows(db, "ipt_session", "resource_id = :id", id=held["id"])
    assert (row.course_id, row.appointment_id, row.is_ipt) == (None, booked["id"], False)
    view = (await ipt.get(f"/ipt/v1/courses/{course['id']}")).json()
    assert [(s["number"], s["outcome"]) for s in view["sessions"]] == [(1, "attended")]
    assert view["sessions"][0]["encounter"] == f"Encounter/{held['id']}"


GOAL_ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"


async def _domain_course(client: httpx.AsyncClient, patient_ref: str) -> str:
    body = {
        "patient": {"reference": patient_ref},
        "conditions": ["F32.1"],
        "problem_areas": ["grief"],
        "start": "2026-01-05T09:00:00Z",
    }
    response = await client.post("/ipt/v1/courses", json=body, headers={"Accept": "*/*"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _clear_queue(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM recompute_request"))
