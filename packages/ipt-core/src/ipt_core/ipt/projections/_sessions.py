"""The session projection: one `ipt_session` row per Encounter or Appointment that is, or may
become, an IPT session, linked to its course by the rules of
docs/fhir-mapping.md#linking-sessions-to-courses (`_linking`).

A row is kept for a session that names IPT, is linked to a course, or is an Encounter of an
Appointment (the same session: the status engine's loader merges the two). Deleting it or
marking it `entered-in-error` removes the row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ipt._careplan_facts import outcome_references
from ipt_core.ipt.projections import repository as repo
from ipt_core.ipt.projections._linking import NO_LINK, CourseWindow, Link, decide_link
from ipt_core.ipt.projections._rows import ENTERED_IN_ERROR, SessionFacts, session_facts

__all__ = ["project_session", "reproject_session"]

SESSION_TYPES = ("Encounter", "Appointment")


async def project_session(
    conn: AsyncConnection,
    resource_type: str,
    resource_id: str,
    resource: dict[str, Any] | None,
    *,
    rewritten: bool,
) -> set[str]:
    """Bring one session's row up to date with its resource.

    Args:
        conn: the write's connection.
        resource_type: Encounter or Appointment.
        resource_id: its id.
        resource: its current content; None when it was deleted.
        rewritten: True when the session itself was written (its auto-link is decided
            again); False when a course write changed what lists it.

    Returns:
        The ids of the courses whose sessions changed (before and after).
    """
    previous = await repo.session_row(conn, resource_type, resource_id)
    affected = {previous.course_id} if previous is not None else set()
    facts = session_facts(resource) if resource is not None else None
    kept = False
    if facts is not None:
        link = await _link(conn, facts, previous, rewritten=rewritten)
        kept = facts.is_ipt or link.course_id is not None or facts.appointment_id is not None
        if kept:
            await repo.upsert(conn, "ipt_session", facts.row(link.course_id, link.reason))
            affected.add(link.course_id)
    if not kept and previous is not None:
        await repo.delete_session(conn, resource_type, resource_id)
    affected |= await _merged_session_courses(conn, resource_type, resource_id, facts, previous)
    return {course_id for course_id in affected if course_id}


async def reproject_session(conn: AsyncConnection, reference: str) -> set[str]:
    """Re-link a session (`Encounter/id`) after a course started or stopped listing it."""
    resource_type, _, resource_id = reference.partition("/")
    if resource_type not in SESSION_TYPES:
        return set()
    content = await repo.read_resource(conn, resource_type, resource_id)
    if content is None:
        return set()  # listed before it exists: linked when it is written
    return await project_session(conn, resource_type, resource_id, content, rewritten=False)


async def _link(
    conn: AsyncConnection, facts: SessionFacts, previous: Any, *, rewritten: bool
) -> Link:
    windows = await repo.course_windows(conn, facts.patient_id)
    listing: list[CourseWindow] = []
    if facts.explicit_course_id is None:
        listing = await _listing_courses(
            conn, windows, f"{facts.resource_type}/{facts.resource_id}"
        )
    return decide_link(
        explicit_course_id=facts.explicit_course_id,
        listing=listing,
        is_ipt=facts.is_ipt,
        courses=windows,
        start=facts.start or await _appointment_start(conn, facts),
        previous=Link(previous.course_id, previous.link_reason) if previous else NO_LINK,
        session_rewritten=rewritten,
    )


async def _listing_courses(
    conn: AsyncConnection, windows: list[CourseWindow], reference: str
) -> list[CourseWindow]:
    # Only the patient's own courses can list a session: a course listing another patient's
    # session is ignored rather than trusted.
    candidates = [w for w in windows if w.status != ENTERED_IN_ERROR]
    careplans = await repo.read_resources(conn, "CarePlan", (w.id for w in candidates))
    return [
        window
        for window in candidates
        if window.id in careplans and reference in outcome_references(careplans[window.id])
    ]


async def _appointment_start(conn: AsyncConnection, facts: SessionFacts) -> Any:
    # An Encounter without a period is placed at its Appointment's start (merged sessions).
    if facts.appointment_id is None:
        return None
    appointment = await repo.session_row(conn, "Appointment", facts.appointment_id)
    return appointment.start if appointment is not None else None


async def _merged_session_courses(
    conn: AsyncConnection,
    resource_type: str,
    resource_id: str,
    facts: SessionFacts | None,
    previous: Any,
) -> set[str]:
    """The courses of the other half of a merged session (Encounter + its Appointment)."""
    if resource_type == "Appointment":
        rows = await repo.encounters_of_appointment(conn, resource_id)
        return {row.course_id for row in rows if row.course_id}
    appointment_ids = {facts.appointment_id if facts else None}
    appointment_ids.add(previous.appointment_id if previous is not None else None)
    courses: set[str] = set()
    for appointment_id in appointment_ids - {None}:
        row = await repo.session_row(conn, "Appointment", str(appointment_id))
        if row is not None and row.course_id:
            courses.add(row.course_id)
    return courses
