"""Analytics reads of the status family: the snapshot pages, a course's status history, and
the trends aggregated over the history per interval (docs/analytics.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Interval,
    case,
    cast,
    column,
    func,
    literal,
    select,
    table,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import course_status as s
from ipt_core.db.schema import course_status_history as h
from ipt_core.db.schema import ipt_course as c
from ipt_core.db.unnest import INSTANT
from ipt_core.status.repository._dashboard import CourseScope

__all__ = ["current_feed_position", "history_page", "status_page", "trend_rows"]

# The relay's feed position sequence (events): its state is read like a one-row table.
_feed_position = table(
    "outbox_feed_position", column("last_value", BigInteger), column("is_called", Boolean)
)


async def current_feed_position(conn: AsyncConnection) -> int:
    """The last feed position handed out so far (0 before the first publication).

    Sequence values are read outside transaction visibility, which is what the snapshot
    needs: a position drawn by a publication not committed yet is still <= the value.
    """
    value = await conn.scalar(
        select(case((_feed_position.c.is_called, _feed_position.c.last_value), else_=0))
    )
    return int(value or 0)


async def status_page(
    conn: AsyncConnection, scope: CourseScope, *, after: str | None, limit: int
) -> list[Any]:
    """Up to `limit` stored statuses after course id `after`, in course id order."""
    query = scope.where(
        select(
            s.c.course_id,
            s.c.version,
            s.c.computed_at,
            s.c.status,
            c.c.patient_id,
            c.c.therapist_ref,
        )
    )
    if after is not None:
        query = query.where(s.c.course_id > after)
    return list(await conn.execute(query.order_by(s.c.course_id).limit(limit)))


async def history_page(
    conn: AsyncConnection, course_id: str, *, after_version: int, limit: int
) -> list[Any]:
    """Stored versions of an IPT course's status after `after_version`, oldest first."""
    rows = await conn.execute(
        select(h.c.version, h.c.computed_at, h.c.cause, h.c.status)
        .join(c, c.c.id == h.c.course_id)
        .where(h.c.course_id == course_id, h.c.version > after_version)
        .order_by(h.c.version)
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True)
class _Buckets:
    interval: str  # day | week | month
    start: datetime
    end: datetime

    def table(self) -> Any:
        step = cast(literal(f"1 {self.interval}"), Interval)
        first = func.date_trunc(self.interval, cast(literal(self.start), INSTANT), "UTC")
        last = cast(literal(self.end - timedelta(microseconds=1)), INSTANT)
        series = func.generate_series(first, last, step).table_valued("b").render_derived("g")
        return select(series.c.b.label("start"), (series.c.b + step).label("stop")).cte("buckets")


def _scoped(scope: CourseScope, query: Any) -> Any:
    joined = query.join(c, c.c.id == h.c.course_id)
    wanted = ((c.c.therapist_ref, scope.therapist), (c.c.organization_ref, scope.organization))
    return joined.where(*(col == value for col, value in wanted if value is not None))


async def trend_rows(
    conn: AsyncConnection,
    *,
    interval: str,
    start: datetime,
    end: datetime,
    scope: CourseScope,
) -> tuple[list[Any], list[Any]]:
    """Per interval: counts grouped by phase / engagement / none, and the completions.

    The counts are over each course's status as it stood at the interval's end (its last
    version computed before then); a completion is a course's first `completed` version.
    """
    buckets = _Buckets(interval, start, end).table()
    standing = (
        _scoped(
            scope,
            select(h.c.status).ext(distinct_on(h.c.course_id)).select_from(h),
        )
        .where(h.c.computed_at < buckets.c.stop)
        .order_by(h.c.course_id, h.c.version.desc())
        .lateral("standing")
    )
    status = standing.c.status
    phase, engagement = status["phase"].astext, status["engagement"].astext
    counts = (
        select(
            buckets.c.start,
            phase.label("phase"),
            engagement.label("engagement"),
            func.grouping(phase).label("by_phase"),
            func.grouping(engagement).label("by_engagement"),
            func.count(status).label("courses"),
            func.coalesce(func.sum(status["sessions_attended"].astext.cast(Integer)), 0).label(
                "attended"
            ),
            func.coalesce(func.sum(status["sessions_no_show"].astext.cast(Integer)), 0).label(
                "no_shows"
            ),
        )
        .select_from(buckets.outerjoin(standing, true()))
        .group_by(
            func.grouping_sets(
                buckets.c.start,
                tuple_(buckets.c.start, phase),
                tuple_(buckets.c.start, engagement),
            )
        )
        .order_by(buckets.c.start)
    )
    completion = (
        _scoped(
            scope,
            select(h.c.computed_at, h.c.status).ext(distinct_on(h.c.course_id)).select_from(h),
        )
        .where(h.c.status["phase"].astext == "completed")
        .order_by(h.c.course_id, h.c.version)
        .cte("completion")
    )
    done = completion.c.status
    completions = (
        select(
            buckets.c.start,
            func.count(done).label("completed"),
            func.count().filter(done["response"].as_boolean()).label("responded"),
            func.count().filter(done["remission"].as_boolean()).label("remitted"),
        )
        .select_from(
            buckets.outerjoin(
                completion,
                (completion.c.computed_at >= buckets.c.start)
                & (completion.c.computed_at < buckets.c.stop),
            )
        )
        .group_by(buckets.c.start)
        .order_by(buckets.c.start)
    )
    return list(await conn.execute(counts)), list(await conn.execute(completions))
