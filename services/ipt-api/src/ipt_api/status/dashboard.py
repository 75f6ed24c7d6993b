"""Dashboard aggregates and worklists over stored course statuses (set-based SQL)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["WORKLIST_KINDS", "WorklistKind", "summary", "worklist"]

WorklistKind = Literal["overdue", "at-risk", "lapsed", "maintenance-due", "safety"]
WORKLIST_KINDS: dict[str, tuple[str, str]] = {
    # kind: (condition on the stored status, the instant that makes a course "oldest")
    "overdue": ("s.engagement = 'overdue'", "s.status->>'next_session_due'"),
    "at-risk": ("s.engagement = 'at-risk'", "s.status->>'next_session_due'"),
    "lapsed": ("s.engagement = 'lapsed'", "s.status->>'next_session_due'"),
    "maintenance-due": (
        "((s.status->>'maintenance_due')::boolean OR (s.status->>'maintenance_overdue')::boolean)",
        "s.status->>'maintenance_next_due'",
    ),
    "safety": ("(s.status->>'safety_flag')::boolean", "s.status->>'last_attended_at'"),
}
_FILTERS = (
    "(CAST(:therapist AS text) IS NULL OR c.therapist_ref = :therapist) AND "
    "(CAST(:organization AS text) IS NULL OR c.organization_ref = :organization) AND "
    "(CAST(:patient AS text) IS NULL OR c.patient_id = :patient)"
)


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
    params = {"therapist": therapist, "organization": organization, "patient": patient}
    base = f"FROM course_status s JOIN ipt_course c ON c.id = s.course_id WHERE {_FILTERS}"
    by_phase = await conn.execute(text(f"SELECT s.phase, count(*) {base} GROUP BY 1"), params)
    by_engagement = await conn.execute(
        text(f"SELECT s.engagement, count(*) {base} AND s.engagement IS NOT NULL GROUP BY 1"),
        params,
    )
    totals = (
        await conn.execute(
            text(
                "SELECT count(*) AS courses, "
                "sum((s.status->>'sessions_attended')::int) AS attended, "
                "sum((s.status->>'sessions_no_show')::int) AS no_shows, "
                "count(*) FILTER (WHERE (s.status->>'maintenance_due')::boolean) "
                "  AS maintenance_due, "
                "count(*) FILTER (WHERE (s.status->>'maintenance_overdue')::boolean) "
                "  AS maintenance_overdue, "
                "count(*) FILTER (WHERE s.phase = 'completed') AS completed, "
                "count(*) FILTER (WHERE s.phase = 'completed' "
                "  AND (s.status->>'response')::boolean) "
                "  AS responded, "
                "count(*) FILTER (WHERE s.phase = 'completed' "
                "  AND (s.status->>'remission')::boolean) "
                f"  AS remitted {base}"
            ),
            params,
        )
    ).one()
    attended, no_shows = totals.attended or 0, totals.no_shows or 0
    return {
        "courses": totals.courses,
        "by_phase": {row[0]: row[1] for row in by_phase},
        "by_engagement": {row[0]: row[1] for row in by_engagement},
        "attendance_rate": _rate(attended, attended + no_shows),
        "maintenance_due": totals.maintenance_due,
        "maintenance_overdue": totals.maintenance_overdue,
        "completed_courses": totals.completed,
        "response_rate": _rate(totals.responded, totals.completed),
        "remission_rate": _rate(totals.remitted, totals.completed),
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
    condition, sort = WORKLIST_KINDS[kind]
    sort_key = f"coalesce({sort}, '')"
    keyset = f"AND ({sort_key}, s.course_id) > (:after_sort, :after_id)" if after else ""
    rows = await conn.execute(
        text(
            f"SELECT s.course_id, c.patient_id, c.therapist_ref, s.status, {sort_key} AS sort "
            "FROM course_status s JOIN ipt_course c ON c.id = s.course_id "
            f"WHERE {condition} AND {_FILTERS} {keyset} "
            f"ORDER BY {sort_key}, s.course_id LIMIT :limit"
        ),
        {
            "therapist": therapist,
            "organization": organization,
            "patient": patient,
            "limit": limit,
            "after_sort": after[0] if after else None,
            "after_id": after[1] if after else None,
        },
    )
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
