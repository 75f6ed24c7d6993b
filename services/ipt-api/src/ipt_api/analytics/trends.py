"""Dashboard trends over the status history, per day, week or month, computed in SQL.

For each interval [start, end): the courses by phase and by engagement as their statuses
stood at the interval's end (the last stored version computed before `end`), the attendance
rate over those statuses, and the PHQ-9 response and remission rates of the courses that
were completed during the interval (their first `completed` version). docs/analytics.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.instants import format_instant

__all__ = ["Interval", "trends"]

Interval = Literal["day", "week", "month"]

_FILTERS = (
    "(CAST(:therapist AS text) IS NULL OR c.therapist_ref = :therapist) AND "
    "(CAST(:organization AS text) IS NULL OR c.organization_ref = :organization)"
)
_STEP = "CAST(CAST(:step AS text) AS interval)"
_BUCKETS = (
    f"buckets AS (SELECT b AS start, b + {_STEP} AS stop FROM generate_series("
    "date_trunc(CAST(:interval AS text), CAST(:from_ AS timestamptz), 'UTC'), "
    f"CAST(:to AS timestamptz) - interval '1 microsecond', {_STEP}) AS b)"
)
# The status of every course as it stood at each bucket's end.
_STANDING = (
    f"WITH {_BUCKETS}, standing AS (SELECT b.start, h.status FROM buckets b "
    "CROSS JOIN LATERAL (SELECT DISTINCT ON (h.course_id) h.status "
    "FROM course_status_history h JOIN ipt_course c ON c.id = h.course_id "
    f"WHERE h.computed_at < b.stop AND {_FILTERS} "
    "ORDER BY h.course_id, h.version DESC) AS h) "
)
_PHASE, _ENGAGEMENT = "s.status->>'phase'", "s.status->>'engagement'"
_COUNTS = (
    _STANDING + f"SELECT b.start, {_PHASE} AS phase, {_ENGAGEMENT} AS engagement, "
    f"GROUPING({_PHASE}) AS by_phase, GROUPING({_ENGAGEMENT}) AS by_engagement, "
    "count(s.status) AS courses, "
    "coalesce(sum((s.status->>'sessions_attended')::int), 0) AS attended, "
    "coalesce(sum((s.status->>'sessions_no_show')::int), 0) AS no_shows "
    "FROM buckets b LEFT JOIN standing s ON s.start = b.start "
    f"GROUP BY GROUPING SETS ((b.start), (b.start, {_PHASE}), (b.start, {_ENGAGEMENT})) "
    "ORDER BY 1"
)
_COMPLETIONS = (
    f"WITH {_BUCKETS}, completion AS (SELECT DISTINCT ON (h.course_id) h.computed_at, h.status "
    "FROM course_status_history h JOIN ipt_course c ON c.id = h.course_id "
    f"WHERE h.status->>'phase' = 'completed' AND {_FILTERS} "
    "ORDER BY h.course_id, h.version) "
    "SELECT b.start, count(x.status) AS completed, "
    "count(*) FILTER (WHERE (x.status->>'response')::boolean) AS responded, "
    "count(*) FILTER (WHERE (x.status->>'remission')::boolean) AS remitted "
    "FROM buckets b LEFT JOIN completion x ON x.computed_at >= b.start "
    "AND x.computed_at < b.stop GROUP BY b.start ORDER BY b.start"
)


async def trends(
    conn: AsyncConnection,
    *,
    interval: Interval,
    start: datetime,
    end: datetime,
    therapist: str | None,
    organization: str | None,
) -> list[dict[str, Any]]:
    """One entry per interval from `start`'s interval up to `end` (exclusive), oldest first."""
    params = {
        "interval": interval,
        "step": f"1 {interval}",
        "from_": start,
        "to": end,
        "therapist": therapist,
        "organization": organization,
    }
    buckets: dict[datetime, dict[str, Any]] = {}
    for row in await conn.execute(text(_COUNTS), params):
        entry = buckets.setdefault(row.start, _empty(row.start, interval))
        _add_counts(entry, row)
    for row in await conn.execute(text(_COMPLETIONS), params):
        entry = buckets.setdefault(row.start, _empty(row.start, interval))
        entry["completed_courses"] = row.completed
        entry["response_rate"] = _rate(row.responded, row.completed)
        entry["remission_rate"] = _rate(row.remitted, row.completed)
    return [buckets[key] for key in sorted(buckets)]


def _empty(start: datetime, interval: Interval) -> dict[str, Any]:
    return {
        "start": format_instant(start),
        "interval": interval,
        "courses": 0,
        "by_phase": {},
        "by_engagement": {},
        "attendance_rate": None,
        "completed_courses": 0,
        "response_rate": None,
        "remission_rate": None,
    }


def _add_counts(entry: dict[str, Any], row: Any) -> None:
    # GROUPING() is 0 for the key a row is grouped by: totals have neither key.
    if row.by_phase and row.by_engagement:
        entry["courses"] = row.courses
        attended, no_shows = int(row.attended), int(row.no_shows)
        entry["attendance_rate"] = _rate(attended, attended + no_shows)
    elif not row.by_phase and row.phase is not None:
        entry["by_phase"][row.phase] = row.courses
    elif not row.by_engagement and row.engagement is not None:
        entry["by_engagement"][row.engagement] = row.courses


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)
