"""The demo caseload: a dozen synthetic patients, a course in every phase, written once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.courses.service._views import fresh_phases
from ipt_api.demo import has_ipt_courses, seed_demo
from ipt_core.ipt.codes import PHASES
from tests.integration.ipt_helpers import rows

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


async def test_the_demo_caseload_is_written_once(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        assert not await has_ipt_courses(conn)
    assert await seed_demo(db, now=lambda: NOW) == 13
    assert await seed_demo(db, now=lambda: NOW) == 0

    courses = await rows(db, "ipt_course")
    assert len({c.patient_id for c in courses}) == 12
    assert Counter(c.status for c in courses) == {
        "active": 8,
        "completed": 2,
        "draft": 1,
        "revoked": 1,
        "on-hold": 1,
    }
    assert {c.course_type for c in courses} == {"acute", "maintenance"}
    assert {area for c in courses for area in c.problem_areas} == {
        "grief",
        "role-transition",
        "role-dispute",
        "interpersonal-deficits",
    }
    sessions = await rows(db, "ipt_session")
    assert {s.status for s in sessions} == {"finished", "noshow", "cancelled"}
    assert all(s.course_id and s.link_reason == "extension" for s in sessions)
    assert all(s.start <= NOW for s in sessions)
    assert len(await rows(db, "ipt_measure")) > 24
    assert await rows(db, "recompute_request")  # the worker has every course to compute


async def test_the_demo_caseload_has_a_course_in_every_phase(db: AsyncEngine) -> None:
    await seed_demo(db, now=lambda: NOW)
    ids = [c.id for c in await rows(db, "ipt_course")]
    async with db.connect() as conn:
        phases = await fresh_phases(conn, ids, NOW)
    assert set(phases.values()) == set(PHASES)
