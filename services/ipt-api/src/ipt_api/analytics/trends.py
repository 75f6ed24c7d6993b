"""Dashboard trends over the status history, per day, week or month, computed in SQL.

For each interval [start, end): the courses by phase and by engagement as their statuses
stood at the interval's end (the last stored version computed before `end`), the attendance
rate over those statuses, and the PHQ-9 response and remission rates of the courses that
were completed during the interval (their first `completed` version). docs/analytics.md.
The SQL is the status repository's (`ipt_core.status.repository.trend_rows`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.instants import format_instant
from ipt_core.status.repository import CourseScope, trend_rows

__all__ = ["Interval", "trends"]

Interval = Literal["day", "week", "month"]


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
    scope = CourseScope(therapist=therapist, organization=organization)
    counts, completions = await trend_rows(
        conn, interval=interval, start=start, end=end, scope=scope
    )
    buckets: dict[datetime, dict[str, Any]] = {}
    for row in counts:
        entry = buckets.setdefault(row.start, _empty(row.start, interval))
        _add_counts(entry, row)
    for row in completions:
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
