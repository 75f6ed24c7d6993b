"""Dashboard summary and worklists on the demo caseload, checked against the stored rows.

The expected values are computed here in Python from `course_status` and `ipt_course` (an
independent reading of the dashboard's definitions), then compared with what the API serves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.demo import seed_demo
from ipt_core.composition import write_listeners
from ipt_worker.recompute import Recomputer
from tests.integration.ipt_helpers import Clock, ipt, rows

__all__ = ["ipt"]

SEEDED = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
LATER = datetime(2026, 12, 18, 9, 0, tzinfo=UTC)  # four weeks on: some courses fall behind


@pytest.fixture
def clock() -> Clock:
    return Clock(SEEDED)


async def computed_caseload(db: AsyncEngine, clock: Clock) -> list[tuple[Any, Any]]:
    await seed_demo(db, now=clock)
    worker = Recomputer(db, clock=clock, listeners=write_listeners())
    try:
        for now in (SEEDED, LATER):
            clock.now = now
            while await worker.run_once():
                pass
    finally:
        await worker.close()
    courses = {row.id: row for row in await rows(db, "ipt_course")}
    return [(status, courses[status.course_id]) for status in await rows(db, "course_status")]


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


async def test_the_summary_counts_the_stored_statuses(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    caseload = await computed_caseload(db, clock)
    statuses = [status.status for status, _ in caseload]
    completed = [s for s in statuses if s["phase"] == "completed"]
    attended = sum(s["sessions_attended"] for s in statuses)
    no_shows = sum(s["sessions_no_show"] for s in statuses)
    phases: dict[str, int] = {}
    engagements: dict[str, int] = {}
    for s in statuses:
        phases[s["phase"]] = phases.get(s["phase"], 0) + 1
        if s["engagement"] is not None:
            engagements[s["engagement"]] = engagements.get(s["engagement"], 0) + 1

    served = (await ipt.get("/ipt/v1/dashboard/summary")).json()

    assert served == {
        "courses": len(statuses),
        "by_phase": phases,
        "by_engagement": engagements,
        "attendance_rate": rate(attended, attended + no_shows),
        "maintenance_due": sum(bool(s["maintenance_due"]) for s in statuses),
        "maintenance_overdue": sum(bool(s["maintenance_overdue"]) for s in statuses),
        "completed_courses": len(completed),
        "response_rate": rate(sum(bool(s["response"]) for s in completed), len(completed)),
        "remission_rate": rate(sum(bool(s["remission"]) for s in completed), len(completed)),
    }
    assert len(phases) > 2  # the demo has courses in several phases
    therapist = next(course.therapist_ref for _, course in caseload if course.therapist_ref)
    mine = (await ipt.get("/ipt/v1/dashboard/summary", params={"therapist": therapist})).json()
    assert mine["courses"] == sum(course.therapist_ref == therapist for _, course in caseload)


@pytest.mark.parametrize(
    ("kind", "wanted", "sort_field"),
    [
        ("overdue", lambda s: s["engagement"] == "overdue", "next_session_due"),
        ("at-risk", lambda s: s["engagement"] == "at-risk", "next_session_due"),
        ("lapsed", lambda s: s["engagement"] == "lapsed", "next_session_due"),
        (
            "maintenance-due",
            lambda s: s["maintenance_due"] or s["maintenance_overdue"],
            "maintenance_next_due",
        ),
        ("safety", lambda s: s["safety_flag"], "last_attended_at"),
    ],
)
async def test_worklists_page_through_their_courses_oldest_first(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock, kind: str, wanted: Any, sort_field: str
) -> None:
    caseload = await computed_caseload(db, clock)
    expected = sorted(
        (
            (status.status.get(sort_field) or "", status.course_id)
            for status, _ in caseload
            if wanted(status.status)
        ),
    )
    served: list[str] = []
    url: str | None = f"/ipt/v1/dashboard/worklist?kind={kind}&limit=2"
    while url is not None:
        page = (await ipt.get(url)).json()
        served += [item["course_id"] for item in page["items"]]
        url = page["next"]
    assert served == [course_id for _, course_id in expected]
