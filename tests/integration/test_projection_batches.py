"""The write listeners' batch forms keep what one-by-one writes keep (docs/architecture.md).

The same resources are written for two patients on real PostgreSQL: once with one
set-based `put_many` (the listeners told in one batch), once one by one. The projection rows,
the recompute requests and the outbox events must match, and a rule broken in the middle
of a batch names the change that broke it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.fhir.errors import BusinessRuleViolated
from ipt_core.fhir.model import ResourcePut
from ipt_core.fhir.store import PutFailed, ResourceStore
from ipt_core.ipt import Course, course_to_careplan
from ipt_core.ipt.projections._courses import project_courses
from tests.integration.ipt_helpers import ENCOUNTER_LINK, IPT, course_link, encounter, phq9

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
OTHER = {"system": "http://snomed.info/sct", "code": "185389009"}  # a follow-up visit


def _resources(patient_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """A course and, in order: IPT sessions in its window (auto), an explicitly linked one,
    a visit that is no session, PHQ-9s, a second course overlapping the first, a session."""
    ref = f"Patient/{patient_id}"
    course, later = f"c-{patient_id}", f"d-{patient_id}"
    plan = course_to_careplan(
        Course.model_validate(
            {
                "id": course,
                "status": "active",
                "patient": ref,
                "problem_areas": ("grief",),
                "start": datetime(2026, 1, 5, 9, tzinfo=UTC),
            }
        )
    )
    second = course_to_careplan(
        Course.model_validate(
            {
                "id": later,
                "status": "active",
                "patient": ref,
                "problem_areas": ("grief",),
                "start": datetime(2026, 2, 20, 9, tzinfo=UTC),
            }
        )
    )
    day = "2026-01-{:02d}T09:00:00Z"
    return [
        ("Patient", patient_id, {"resourceType": "Patient", "id": patient_id}),
        ("CarePlan", course, plan),
        *[
            ("Encounter", f"e{n}-{patient_id}", encounter(ref, day.format(n), types=[IPT]))
            for n in (12, 19, 26)
        ],
        (
            "Encounter",
            f"x-{patient_id}",
            encounter(
                ref, "2025-12-01T09:00:00Z", types=[OTHER], **course_link(ENCOUNTER_LINK, course)
            ),
        ),
        ("Encounter", f"o-{patient_id}", encounter(ref, day.format(27), types=[OTHER])),
        ("Encounter", f"early-{patient_id}", encounter(ref, "2026-02-25T09:00:00Z", types=[IPT])),
        *[
            ("Observation", f"q{n}-{patient_id}", phq9(ref, day.format(n), 20 - n // 2, item9=0))
            for n in (12, 26)
        ],
        ("CarePlan", later, second),
        ("Encounter", f"late-{patient_id}", encounter(ref, "2026-02-25T09:00:00Z", types=[IPT])),
    ]


async def _rows(db: AsyncEngine, query: str, patient_id: str) -> list[tuple[Any, ...]]:
    async with db.connect() as conn:
        found = await conn.execute(text(query), {"p": patient_id})
        return sorted(tuple(str(v).replace(patient_id, "P") for v in row) for row in found)


async def _state(db: AsyncEngine, patient_id: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "sessions": await _rows(db, "SELECT * FROM ipt_session WHERE patient_id = :p", patient_id),
        "measures": await _rows(db, "SELECT * FROM ipt_measure WHERE patient_id = :p", patient_id),
        "courses": await _rows(db, "SELECT * FROM ipt_course WHERE patient_id = :p", patient_id),
        "recomputes": await _rows(
            db,
            "SELECT course_id, due_at FROM recompute_request WHERE course_id LIKE '%' || :p",
            patient_id,
        ),
        "events": await _rows(  # in order: a zero-padded position comes first
            db,
            "SELECT lpad((row_number() OVER (ORDER BY seq))::text, 4, '0'), aggregateid, type"
            " FROM outbox WHERE aggregateid LIKE '%' || :p",
            patient_id,
        ),
    }


async def test_a_batch_projects_what_one_by_one_writes_project(db: AsyncEngine) -> None:
    batched, single = f"b{uuid.uuid4().hex[:8]}", f"s{uuid.uuid4().hex[:8]}"
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        puts = [ResourcePut(t, i, {**body, "id": i}) for t, i, body in _resources(batched)]
        await store.put_many(puts)
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        for t, i, body in _resources(single):
            await store.update(t, i, {**body, "id": i})
    expected = await _state(db, single)
    assert expected["measures"]
    assert expected["recomputes"]
    # Write order matters: `early` is written before the second course and auto-linked to
    # the first, the same day's `late` after it falls in both courses' windows (unlinked).
    linked = [s[1] for s in expected["sessions"] if s[3] != "None"]
    assert linked == ["e12-P", "e19-P", "e26-P", "early-P", "x-P"]
    assert await _state(db, batched) == expected


async def _put_many(db: AsyncEngine, resources: list[tuple[str, str, dict[str, Any]]]) -> int:
    """Write `resources` with one `put_many`; return the SQLAlchemy statements it sent."""
    sent = [0]

    def count(*_: Any) -> None:
        sent[0] += 1

    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        puts = [ResourcePut(t, i, {**body, "id": i}) for t, i, body in resources]
        event.listen(conn.sync_connection, "before_cursor_execute", count)
        await store.put_many(puts)
    return sent[0]


async def test_patients_in_one_batch_project_as_one_by_one_in_shared_runs(
    db: AsyncEngine,
) -> None:
    # Two patients' resources one after the other, as in a bulk load: the projections reorder
    # them into runs of one type for both (projections/_schedule.py) and keep what each
    # patient's order gives.
    alone, first, second = (f"{p}{uuid.uuid4().hex[:8]}" for p in "alm")
    statements_alone = await _put_many(db, _resources(alone))
    statements_mixed = await _put_many(db, [*_resources(first), *_resources(second)])
    expected = await _state(db, alone)
    assert await _state(db, first) == expected
    assert await _state(db, second) == expected
    # In write order the second patient's runs cost what the first one's did: 1.7 times the
    # statements of one patient (40 against 23). Shared runs: the second patient adds only
    # what its courses cost one by one (29).
    assert statements_mixed < 1.6 * statements_alone, (statements_mixed, statements_alone)


def _courses(patient_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """An acute course and its maintenance course, each listing nothing: one run of two."""
    ref = f"Patient/{patient_id}"
    acute, follow = f"a-{patient_id}", f"m-{patient_id}"
    common: dict[str, Any] = {"patient": ref, "problem_areas": ("grief",), "status": "active"}
    plans: list[dict[str, Any]] = [
        {"id": acute, "start": datetime(2026, 1, 5, 9, tzinfo=UTC)},
        {
            "id": follow,
            "course_type": "maintenance",
            "planned_sessions": None,
            "based_on": acute,
            "start": datetime(2026, 4, 6, 9, tzinfo=UTC),
        },
    ]
    return [
        ("Patient", patient_id, {"resourceType": "Patient", "id": patient_id}),
        *[
            ("CarePlan", plan["id"], course_to_careplan(Course.model_validate(common | plan)))
            for plan in plans
        ],
    ]


async def test_a_run_of_courses_projects_set_based_as_one_by_one(db: AsyncEngine) -> None:
    batched, single = f"b{uuid.uuid4().hex[:8]}", f"s{uuid.uuid4().hex[:8]}"
    statements = await _put_many(db, _courses(batched))
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        for t, i, body in _courses(single):
            await store.update(t, i, {**body, "id": i})
    expected = await _state(db, single)
    assert [row[0] for row in expected["courses"]] == ["a-P", "m-P"]
    assert [row[0] for row in expected["recomputes"]] == ["a-P", "m-P"]
    assert await _state(db, batched) == expected
    # One by one, a course costs three statements (its row, the upsert, its maintenance
    # courses): the second course would add four (12 against 8 for one course, measured). A
    # run of two costs one more than a single course (the upsert of many).
    one_course = await _put_many(db, _courses(f"o{uuid.uuid4().hex[:8]}")[:2])
    assert statements <= one_course + 1, (statements, one_course)


async def test_a_run_with_a_course_listing_a_session_goes_one_by_one(db: AsyncEngine) -> None:
    # The session is written first; the acute course then lists it (linking rule 2), so the
    # run of two courses is projected one by one, and the session is linked as one by one.
    def resources(patient_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        patient, acute, follow = _courses(patient_id)
        session = encounter(f"Patient/{patient_id}", "2026-01-12T09:00:00Z", types=[OTHER])
        listing = {"outcomeReference": [{"reference": f"Encounter/e-{patient_id}"}]}
        listed = {**acute[2], "activity": [*acute[2].get("activity", []), listing]}
        return [patient, ("Encounter", f"e-{patient_id}", session), (*acute[:2], listed), follow]

    batched, single = f"b{uuid.uuid4().hex[:8]}", f"s{uuid.uuid4().hex[:8]}"
    await _put_many(db, resources(batched))
    async with db.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        for t, i, body in resources(single):
            await store.update(t, i, {**body, "id": i})
    expected = await _state(db, single)
    assert [(row[1], row[3], row[4]) for row in expected["sessions"]] == [
        ("e-P", "a-P", "outcome-reference")
    ]
    assert await _state(db, batched) == expected


async def test_a_run_of_deleted_courses_removes_their_rows(db: AsyncEngine) -> None:
    patient = f"d{uuid.uuid4().hex[:8]}"
    await _put_many(db, _courses(patient))
    async with db.begin() as conn:
        gone = [
            (f"{kind}-{patient}", None, body)
            for kind, (_, _, body) in zip("am", _courses(patient)[1:], strict=True)
        ]
        affected = await project_courses(conn, gone)
    # Each deletion's courses: itself and its acute one, and together the maintenance course
    # of the acute one, all recomputed (one by one the acute course's own set names it).
    assert set().union(*affected) == {f"a-{patient}", f"m-{patient}"}
    assert f"a-{patient}" in affected[1]
    assert (await _state(db, patient))["courses"] == []


async def test_a_rule_broken_mid_batch_names_its_change(db: AsyncEngine) -> None:
    owner, other = f"r{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    resources = _resources(owner)
    # An Encounter of another patient linked to this patient's course breaks the session rule.
    stray = encounter(f"Patient/{other}", "2026-01-13T09:00:00Z", types=[IPT])
    stray |= course_link(ENCOUNTER_LINK, f"c-{owner}")
    resources.insert(4, ("Encounter", f"stray-{owner}", stray))
    async with db.connect() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=lambda: NOW)
        puts = [ResourcePut(t, i, {**body, "id": i}) for t, i, body in resources]
        with pytest.raises(PutFailed) as failed:
            await store.put_many(puts)
        await conn.rollback()
    assert failed.value.position == 4
    assert isinstance(failed.value.error, BusinessRuleViolated)
