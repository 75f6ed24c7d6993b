"""The session projection of a run of Encounter writes, set-based (`project_session` of each).

An Encounter's row depends on its own previous row, its patient's courses, the CarePlans that
may list it and its Appointment's row; none of those is changed by another Encounter's
projection, so a run of Encounter writes (each Encounter at most once) reads each of them
with one statement, decides every link as `project_session` does and writes the rows with one
upsert and one delete. A transaction's 13 sessions took 4 statements each before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ipt._careplan_facts import outcome_references
from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._linking import NO_LINK, CourseWindow, Link, decide_link
from ipt_core.ipt.projections._rows import ENTERED_IN_ERROR, SessionFacts, session_facts

__all__ = ["project_encounters"]

Resource = dict[str, Any]


async def project_encounters(
    conn: AsyncConnection, encounters: Sequence[tuple[str, Resource | None]]
) -> list[set[str]]:
    """Bring the rows of written Encounters up to date; return each one's affected courses.

    Args:
        conn: the write's connection.
        encounters: (id, current content or None when deleted), each id at most once.
    """
    ids = [id_ for id_, _ in encounters]
    previous = await repo.session_rows(conn, "Encounter", ids)
    facts = [
        session_facts(resource) if resource is not None else None for _, resource in encounters
    ]
    windows = await repo.course_windows_of(conn, {f.patient_id for f in facts if f is not None})
    careplans = await _candidate_careplans(conn, facts, windows)
    appointment_ids = {f.appointment_id for f in facts if f is not None}
    appointment_ids |= {row.appointment_id for row in previous.values()}
    appointments = await repo.session_rows(conn, "Appointment", {a for a in appointment_ids if a})
    kept_rows: list[Resource] = []
    gone: list[str] = []
    affected: list[set[str]] = []
    for id_, fact in zip(ids, facts, strict=True):
        before = previous.get(id_)
        courses = {before.course_id} if before is not None else set()
        kept = False
        if fact is not None:
            link = _link(fact, before, windows.get(fact.patient_id, []), careplans, appointments)
            kept = fact.is_ipt or link.course_id is not None or fact.appointment_id is not None
            if kept:
                kept_rows.append(fact.row(link.course_id, link.reason))
                courses.add(link.course_id)
        if not kept and before is not None:
            gone.append(id_)
        # The courses of the other half of a merged session (the Encounter's Appointment).
        halves = {fact.appointment_id if fact else None}
        halves.add(before.appointment_id if before is not None else None)
        for appointment_id in halves - {None}:
            row = appointments.get(str(appointment_id))
            if row is not None and row.course_id:
                courses.add(row.course_id)
        affected.append({course_id for course_id in courses if course_id})
    await repo.upsert_many(conn, "ipt_session", kept_rows)
    await repo.delete_sessions(conn, "Encounter", gone)
    return affected


async def _candidate_careplans(
    conn: AsyncConnection,
    facts: list[SessionFacts | None],
    windows: dict[str, list[CourseWindow]],
) -> dict[str, Resource]:
    """The CarePlans that may list one of the sessions: their patients' courses, not in error."""
    ids = {
        window.id
        for fact in facts
        if fact is not None and fact.explicit_course_id is None
        for window in windows.get(fact.patient_id, [])
        if window.status != ENTERED_IN_ERROR
    }
    return await repo.read_resources(conn, "CarePlan", ids) if ids else {}


def _link(
    fact: SessionFacts,
    previous: Any,
    windows: list[CourseWindow],
    careplans: dict[str, Resource],
    appointments: dict[str, Any],
) -> Link:
    listing: list[CourseWindow] = []
    if fact.explicit_course_id is None:
        # Only the patient's own courses can list a session (as `_sessions._listing_courses`).
        reference = f"{fact.resource_type}/{fact.resource_id}"
        listing = [
            w
            for w in windows
            if w.status != ENTERED_IN_ERROR
            and w.id in careplans
            and reference in outcome_references(careplans[w.id])
        ]
    start = fact.start
    if not start and fact.appointment_id is not None:
        appointment = appointments.get(fact.appointment_id)
        start = appointment.start if appointment is not None else None
    return decide_link(
        explicit_course_id=fact.explicit_course_id,
        listing=listing,
        is_ipt=fact.is_ipt,
        courses=windows,
        start=start,
        previous=Link(previous.course_id, previous.link_reason) if previous else NO_LINK,
        session_rewritten=True,
    )
