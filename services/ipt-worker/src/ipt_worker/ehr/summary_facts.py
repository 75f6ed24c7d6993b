"""What a course summary says, read from the IPT projections and the course's Goals."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.ehr.listener import course_completed
from ipt_core.ehr.summary import CourseSummary, GoalLine, SessionLine
from ipt_core.ipt.projections import repository as ipt_rows

__all__ = ["course_summary"]


async def course_summary(conn: AsyncConnection, course_id: str) -> CourseSummary | None:
    """The summary of a completed course; None when the course is not (or no longer) complete."""
    careplan = await ipt_rows.read_resource(conn, "CarePlan", course_id)
    course = await ipt_rows.course_row(conn, course_id)
    if careplan is None or course is None or not course_completed(careplan):
        return None
    sessions = await ipt_rows.course_encounters(conn, course_id)
    scores = await ipt_rows.phq9_totals(
        conn, course.patient_id, course.period_start, course.period_end
    )
    goal_ids = [_id(goal) for goal in careplan.get("goal", [])]
    goals = await ipt_rows.read_resources(conn, "Goal", [g for g in goal_ids if g])
    return CourseSummary(
        course_id=course_id,
        patient_id=course.patient_id,
        title=str(careplan.get("title") or "Interpersonal psychotherapy course summary"),
        period_start=course.period_start,
        period_end=course.period_end,
        sessions=[SessionLine(r.start, r.status, r.minutes) for r in sessions],
        phq9=[(r.effective, int(r.value)) for r in scores],
        goals=[_goal_line(goals[g]) for g in goal_ids if g in goals],
    )


def _id(reference: Any) -> str | None:
    value = reference.get("reference") if isinstance(reference, dict) else None
    return value.split("/", 1)[1] if isinstance(value, str) and "/" in value else None


def _goal_line(goal: dict[str, Any]) -> GoalLine:
    description = (goal.get("description") or {}).get("text") or "Goal"
    codings = (goal.get("achievementStatus") or {}).get("coding") or [{}]
    return GoalLine(str(description), codings[0].get("code"))
