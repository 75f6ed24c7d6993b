"""The status snapshot: every course's stored status, paged, with the feed position it matches.

Why `feed_after` is safe (docs/analytics.md has the full argument):

- A status change and its outbox events commit in one transaction (the recompute loop).
- The relay later gives each published event a feed position with `nextval` on the
  `outbox_feed_position` sequence (CACHE 1), in a transaction that first read the event, so
  the event's transaction had committed before its position was drawn.
- A page is read by one statement, whose snapshot is taken *after* `feed_after` was read
  (an earlier statement for the first page; earlier requests for the others).

So every position <= `feed_after` belongs to an event committed before the page's snapshot:
its change is in the page (re-seeing it is harmless: `version` tells). And every change the
page does not show committed after its snapshot, hence after `feed_after` was read, so its
event's position is drawn later and is > `feed_after`: the feed delivers it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.instants import format_instant
from ipt_core.status.repository import CourseScope, current_feed_position
from ipt_core.status.repository import status_page as status_rows

__all__ = ["StatusFilters", "current_feed_position", "status_page"]


StatusFilters = CourseScope  # which courses a snapshot covers (None: any)


async def status_page(
    conn: AsyncConnection, filters: StatusFilters, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` stored statuses after course id `after`, in course id order.

    `current_feed_position` must run in a statement *before* the first page's (above).
    """
    return [_item(row) for row in await status_rows(conn, filters, after=after, limit=limit)]


def _item(row: Any) -> dict[str, Any]:
    return {
        "course_id": row.course_id,
        "patient": f"Patient/{row.patient_id}",
        "therapist": row.therapist_ref,
        "status": {
            **row.status,
            "version": row.version,
            "computed_at": format_instant(row.computed_at),
        },
    }
