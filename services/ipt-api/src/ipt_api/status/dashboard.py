"""Dashboard aggregates and worklists over stored course statuses (the SQL is the status
repository's: `ipt_core.status.repository`)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.status.repository import CourseScope, status_totals, worklist_rows

__all__ = ["WorklistKind", "summary", "worklist"]

WorklistKind = Literal["overdue", "at-risk", "lapsed", "maintenance-due", "safety"]


async def summary(
    conn: AsyncConnection,
    *,
    therapist: str | None,
    organization: str | None,
    patient: str | None = None,
) -> dict[str, Any]:
    """Counts by phase and engagement, attendance, maintenance and outcome rates.

    `patient` limits everything to one patient's courses (a `patient/` scoped caller).
    """
    scope = CourseScope(therapist=therapist, organization=organization, patient=patient)
    totals = await status_totals(conn, scope)
    attended, no_shows = totals["attended"] or 0, totals["no_shows"] or 0
    return {
        "courses": totals["courses"],
        "by_phase": totals["by_phase"],
        "by_engagement": totals["by_engagement"],
        "attendance_rate": _rate(attended, attended + no_shows),
        "maintenance_due": totals["maintenance_due"],
        "maintenance_overdue": totals["maintenance_overdue"],
        "completed_courses": totals["completed"],
        "response_rate": _rate(totals["responded"], totals["completed"]),
        "remission_rate": _rate(totals["remitted"], totals["completed"]),
    }


async def worklist(
    conn: AsyncConnection,
    kind: WorklistKind,
    *,
    therapist: str | None,
    organization: str | None,
    after: tuple[str, str] | None,
    limit: int,
    patient: str | None = None,
) -> list[dict[str, Any]]:
    """Courses needing action, oldest first, after the keyset `(sort value, course id)`."""
    scope = CourseScope(therapist=therapist, organization=organization, patient=patient)
    rows = await worklist_rows(conn, kind, scope, limit, after=after)
    return [
        {
            "course_id": row.course_id,
            "patient": f"Patient/{row.patient_id}",
            "therapist": row.therapist_ref,
            "sort": row.sort,
            "status": row.status,
        }
        for row in rows
    ]


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
