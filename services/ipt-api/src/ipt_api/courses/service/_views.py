"""Reading courses for clinic apps: one course with its sessions, or a filtered list.

Sessions come from the session projection, an Encounter merged with the Appointment it
references (docs/fhir-mapping.md#merged-sessions); attended sessions up to now are numbered
1, 2, 3 … in time order, ties by id (docs/fhir-mapping.md#ordering-and-numbering). The phase
is the status engine's: computed fresh for one course, the stored one in lists (fresh only for
courses the engine has not computed yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_api.courses import repository
from ipt_api.courses.responses import (
    CourseSummary,
    CourseView,
    GoalView,
    PracticeView,
    SessionView,
)
from ipt_api.courses.service._course_io import load_course
from ipt_core.fhir.store import ResourceStore
from ipt_core.ipt import Phase
from ipt_core.ipt.codes import APPOINTMENT_OUTCOMES, ENCOUNTER_OUTCOMES
from ipt_core.status import CourseFacts, compute_status
from ipt_core.status.loader import load_facts

__all__ = ["course_summaries", "course_view", "session_views"]


# The fields of a course view that are the course's own, as the CarePlan holds them.
_AS_STORED: Final = (
    "id",
    "identifier",
    "patient",
    "therapist",
    "status",
    "course_type",
    "planned_sessions",
    "session_minutes",
    "cadence",
    "start",
    "end",
    "based_on",
)


async def course_view(store: ResourceStore, course_id: str) -> CourseView:
    """The course with its goals, practice and sessions, as stored now."""
    course = (await load_course(store, course_id)).course
    now = store.clock()
    sessions = session_views(await repository.session_rows(store.conn, course_id), course_id, now)
    phases = await fresh_phases(store.conn, [course_id], now)
    return CourseView(
        **{name: getattr(course, name) for name in _AS_STORED},
        phase=phases.get(course_id),
        problem_areas=list(course.problem_areas),
        conditions=list(course.conditions),
        symptom_goal=f"Goal/{course.symptom_goal_id}" if course.symptom_goal_id else None,
        interpersonal_goals=[
            GoalView(id=g.id, text=g.text, problem_area=g.problem_area, achievement=g.achievement)
            for g in course.interpersonal_goals
        ],
        practice=[
            PracticeView(number=n, description=p.description, status=p.status)
            for n, p in enumerate(course.practice_assignments, start=1)
        ],
        sessions=sessions,
        sessions_attended=sum(1 for s in sessions if s.number is not None),
        maintenance_courses=await repository.maintenance_course_ids(store.conn, course_id),
    )


async def course_summaries(
    conn: AsyncConnection,
    *,
    patient_id: str | None,
    therapist_refs: Sequence[str],
    phase: Phase | None,
    limit: int,
    now: datetime,
) -> list[CourseSummary]:
    """Courses of a patient and/or therapist, optionally in one phase, latest start first."""
    rows = await repository.course_rows(
        conn,
        patient_id=patient_id,
        therapist_refs=therapist_refs,
        phase=phase,
        limit=None if phase else limit,
    )
    missing = [row.id for row in rows if row.stored_phase is None]
    phases = {row.id: row.stored_phase for row in rows} | await fresh_phases(conn, missing, now)
    summaries = [_summary(row, phases.get(row.id)) for row in rows]
    return [s for s in summaries if phase is None or s.phase == phase][:limit]


async def fresh_phases(
    conn: AsyncConnection, course_ids: Sequence[str], now: datetime
) -> dict[str, str]:
    """The phase of each course computed now from its facts (courses in error have none)."""
    facts = await load_facts(conn, list(course_ids)) if course_ids else {}
    return {
        course_id: compute_status(found, now).phase
        for course_id, found in facts.items()
        if isinstance(found, CourseFacts)  # an unreadable course shows no phase
    }


def session_views(rows: Sequence[Any], course_id: str, now: datetime) -> list[SessionView]:
    """The course's sessions, each Encounter merged with its Appointment, numbered."""
    appointments = {r.resource_id: r for r in rows if r.resource_type == "Appointment"}
    encounters = [r for r in rows if r.resource_type == "Encounter"]
    merged = {e.appointment_id for e in encounters if e.appointment_id in appointments}
    pairs = [(e, appointments.get(e.appointment_id)) for e in encounters]
    pairs += [(None, a) for a in appointments.values() if a.resource_id not in merged]
    sessions = [
        (_order(encounter, appointment), _session(encounter, appointment))
        for encounter, appointment in pairs
        if _course_of(encounter, appointment) == course_id
    ]
    sessions.sort(key=lambda item: item[0])
    numbered, number = [], 0
    for _, session in sessions:
        if session.outcome == "attended" and session.start is not None and session.start <= now:
            number += 1
            session = session.model_copy(update={"number": number})
        numbered.append(session)
    return numbered


def _session(encounter: Any, appointment: Any) -> SessionView:
    deciding = ENCOUNTER_OUTCOMES.get(encounter.status) if encounter is not None else None
    if deciding is None and appointment is not None:
        deciding = APPOINTMENT_OUTCOMES.get(appointment.status)
    link = encounter if encounter is not None and encounter.course_id else appointment
    return SessionView(
        number=None,
        outcome=cast(Any, deciding or "none"),
        start=_first(encounter, appointment, "start"),
        minutes=_first(encounter, appointment, "minutes"),
        encounter=f"Encounter/{encounter.resource_id}" if encounter is not None else None,
        appointment=f"Appointment/{appointment.resource_id}" if appointment is not None else None,
        link_reason=link.link_reason if link is not None else None,
    )


def _course_of(encounter: Any, appointment: Any) -> str | None:
    """The Encounter's course when it has one, else the Appointment's (merged sessions)."""
    if encounter is not None and encounter.course_id:
        return str(encounter.course_id)
    return str(appointment.course_id) if appointment is not None and appointment.course_id else None


def _first(encounter: Any, appointment: Any, column: str) -> Any:
    value = getattr(encounter, column) if encounter is not None else None
    return value if value is not None or appointment is None else getattr(appointment, column)


def _order(encounter: Any, appointment: Any) -> tuple[bool, datetime | None, str]:
    start = _first(encounter, appointment, "start")
    # Ties by resource id: the Appointment's when there is one, as the status engine orders.
    tie = appointment.resource_id if appointment is not None else encounter.resource_id
    return start is None, start, str(tie)


def _summary(row: Any, phase: str | None) -> CourseSummary:
    return CourseSummary(
        id=row.id,
        patient=f"Patient/{row.patient_id}",
        therapist=row.therapist_ref,
        status=row.status,
        phase=cast(Any, phase),
        course_type=row.course_type,
        problem_areas=list(row.problem_areas),
        planned_sessions=row.planned_sessions,
        start=row.period_start,
        end=row.period_end,
        based_on=row.based_on,
    )
