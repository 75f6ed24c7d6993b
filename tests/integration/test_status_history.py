"""Status history and trends on the demo caseload, with the worker run on a fixed clock.

The expected trends are recomputed here in Python from the history rows (an independent
reading of the definition in docs/analytics.md), then compared with the SQL the API runs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.demo import seed_demo
from ipt_core.composition import write_listeners
from ipt_core.instants import format_instant
from ipt_worker.recompute import Recomputer
from tests.integration.ipt_helpers import Clock, ipt, rows

__all__ = ["ipt"]

SEEDED = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # a Friday
WEEKS = 6


@pytest.fixture
def clock() -> Clock:
    return Clock(SEEDED)


async def run_weeks(db: AsyncEngine, clock: Clock) -> None:
    """Seed the demo, then run the worker daily for WEEKS weeks of the fixed clock."""
    await seed_demo(db, now=clock)
    worker = Recomputer(db, clock=clock, listeners=write_listeners())
    try:
        for day in range(WEEKS * 7):
            clock.now = SEEDED + timedelta(days=day)
            while await worker.run_once():
                pass
    finally:
        await worker.close()  # it holds its liveness lock on a connection of its own


async def test_every_stored_status_version_is_in_the_history(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    await run_weeks(db, clock)
    history = await rows(db, "course_status_history")
    current = {row.course_id: row for row in await rows(db, "course_status")}
    assert current
    assert len(history) > len(current)
    by_course: dict[str, list[Any]] = defaultdict(list)
    for row in history:
        by_course[row.course_id].append(row)
    assert set(by_course) == set(current)
    for course_id, versions in by_course.items():
        versions.sort(key=lambda row: row.version)
        assert [row.version for row in versions] == list(range(1, current[course_id].version + 1))
        assert versions[-1].status == current[course_id].status
        assert versions[0].cause == "created"
        assert all(row.cause in {"facts", "time"} for row in versions[1:])
    assert any(row.cause == "time" for row in history)  # e.g. a course falling overdue

    course_id = max(by_course, key=lambda key: len(by_course[key]))
    served = (await ipt.get(f"/ipt/v1/courses/{course_id}/status/history")).json()
    assert [v["version"] for v in served["versions"]] == [r.version for r in by_course[course_id]]
    assert [v["status"] for v in served["versions"]] == [r.status for r in by_course[course_id]]
    assert served["versions"][0]["computed_at"] == format_instant(SEEDED)
    later = await ipt.get(f"/ipt/v1/courses/{course_id}/status/history?after_version=1&limit=1")
    assert [v["version"] for v in later.json()["versions"]] == [2]
    missing = await ipt.get("/ipt/v1/courses/no-such-course/status/history")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


async def test_weekly_trends_follow_the_history(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    await run_weeks(db, clock)
    start, end = SEEDED, SEEDED + timedelta(weeks=WEEKS)
    response = await ipt.get(
        "/ipt/v1/dashboard/trends",
        params={"interval": "week", "from": format_instant(start), "to": format_instant(end)},
    )
    assert response.status_code == 200, response.text
    served = response.json()["intervals"]
    expected = expected_trends(await rows(db, "course_status_history"), start, end)
    assert served == expected
    assert len({tuple(sorted(w["by_engagement"].items())) for w in served}) > 1  # time moves it
    assert sum(week["completed_courses"] for week in served) >= 1


async def test_trends_refuse_bad_ranges(ipt: httpx.AsyncClient) -> None:
    base = "/ipt/v1/dashboard/trends?interval=week"
    backwards = await ipt.get(f"{base}&from=2026-03-01T00:00:00Z&to=2026-02-01T00:00:00Z")
    assert backwards.status_code == 400
    too_long = await ipt.get(f"{base}&from=2000-01-01T00:00:00Z&to=2026-02-01T00:00:00Z")
    assert too_long.status_code == 400
    not_instant = await ipt.get(f"{base}&from=yesterday&to=2026-02-01T00:00:00Z")
    assert not_instant.status_code == 400
    assert not_instant.json()["resourceType"] == "OperationOutcome"


def expected_trends(history: list[Any], start: datetime, end: datetime) -> list[dict[str, Any]]:
    monday = datetime(start.year, start.month, start.day, tzinfo=UTC)
    monday -= timedelta(days=monday.weekday())
    completions = {}
    for row in sorted(history, key=lambda r: r.version):
        if row.status["phase"] == "completed" and row.course_id not in completions:
            completions[row.course_id] = row
    weeks = []
    week = monday
    while week < end:
        stop = week + timedelta(weeks=1)
        standing: dict[str, Any] = {}
        for row in sorted(history, key=lambda r: r.version):
            if row.computed_at < stop:
                standing[row.course_id] = row.status
        statuses = list(standing.values())
        attended = sum(s["sessions_attended"] for s in statuses)
        no_shows = sum(s["sessions_no_show"] for s in statuses)
        done = [r.status for r in completions.values() if week <= r.computed_at < stop]
        weeks.append(
            {
                "start": format_instant(week),
                "interval": "week",
                "courses": len(statuses),
                "by_phase": dict(Counter(s["phase"] for s in statuses)),
                "by_engagement": dict(
                    Counter(s["engagement"] for s in statuses if s["engagement"] is not None)
                ),
                "attendance_rate": rate(attended, attended + no_shows),
                "completed_courses": len(done),
                "response_rate": rate(sum(s["response"] for s in done), len(done)),
                "remission_rate": rate(sum(s["remission"] for s in done), len(done)),
            }
        )
        week = stop
    return weeks


def rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


async def test_the_status_snapshot_pages_and_filters(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    await seed_demo(db, now=clock)
    worker = Recomputer(db, clock=clock, listeners=write_listeners())
    while await worker.run_once():
        pass
    await worker.close()
    stored = {row.course_id: row for row in await rows(db, "course_status")}
    courses = {row.id: row for row in await rows(db, "ipt_course")}

    seen: list[dict[str, Any]] = []
    url: str | None = "/ipt/v1/statuses?limit=5"
    positions = set()
    while url is not None:
        page = (await ipt.get(url)).json()
        seen += page["items"]
        positions.add(page["feed_after"])
        url = page["next"]
        assert url is None or url.startswith("http://testserver/ipt/v1/statuses?")
    assert len(positions) == 1  # one feed position for the whole snapshot
    assert [item["course_id"] for item in seen] == sorted(stored)
    for item in seen:
        row = stored[item["course_id"]]
        assert item["status"] == {
            **row.status,
            "version": row.version,
            "computed_at": format_instant(row.computed_at),
        }
        assert item["patient"] == f"Patient/{courses[item['course_id']].patient_id}"

    middle = (await ipt.get("/ipt/v1/statuses?phase=middle")).json()["items"]
    assert {i["course_id"] for i in middle} == {c for c, r in stored.items() if r.phase == "middle"}
    maintenance = (await ipt.get("/ipt/v1/statuses?course_type=maintenance")).json()["items"]
    expected = {c for c in stored if courses[c].course_type == "maintenance"}
    assert {i["course_id"] for i in maintenance} == expected
    therapist = next(iter(courses.values())).therapist_ref
    mine = (await ipt.get("/ipt/v1/statuses", params={"therapist": therapist})).json()["items"]
    assert {i["therapist"] for i in mine} == {therapist}

    first = (await ipt.get("/ipt/v1/statuses?limit=1")).json()
    moved = first["next"].replace("limit=1", "limit=1&phase=middle")  # another snapshot's cursor
    refused = await ipt.get(moved)
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
