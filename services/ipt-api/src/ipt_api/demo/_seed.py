"""Writing the demo caseload through the domain service, so it is consistent everywhere.

Each course story is replayed in time order on a clock that walks from the course start to
now, so every resource carries the time it would have been written at, every session is
recorded after it took place, and the projections and recompute queue fill as in real use.
The whole caseload is one transaction: it is there completely, or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_api.courses import service
from ipt_api.courses.schemas import (
    EnrolmentRequest,
    MaintenanceRequest,
    PracticeRequest,
    PracticeUpdate,
    SessionRequest,
)
from ipt_api.demo._caseload import CASELOAD, DEMO_PATIENT_SYSTEM, THERAPISTS, DemoCourse
from ipt_core.composition import write_listeners
from ipt_core.fhir.model import WriteCause
from ipt_core.fhir.store import ResourceStore
from ipt_core.instants import add_months
from ipt_core.ipt.fhir_json import narrative
from ipt_core.ipt.projections import repository as ipt_rows

__all__ = ["has_ipt_courses", "seed_demo"]

_THERAPIST_SYSTEM = "http://fhir.ipt-care.org/identifier/demo-practitioner"
_OUTCOMES = {"A": "attended", "N": "no-show", "C": "cancelled"}


class _WalkingClock:
    """The time the store stamps writes with, moved forward as a story is replayed."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def has_ipt_courses(conn: AsyncConnection) -> bool:
    """Whether the database holds any IPT course."""
    return await ipt_rows.any_course(conn)


async def seed_demo(engine: AsyncEngine, *, now: Callable[[], datetime] | None = None) -> int:
    """Write the demo caseload; return how many courses were created (0 when already there).

    Args:
        engine: the migrated database.
        now: the current time (injectable for tests).
    """
    end = (now or (lambda: datetime.now(UTC)))()
    clock = _WalkingClock(end)
    async with engine.begin() as conn:
        store = ResourceStore(conn, listeners=write_listeners(), clock=clock, cause=WriteCause.SEED)
        therapists = [await _therapist(store, *therapist) for therapist in THERAPISTS]
        created = 0
        for story in CASELOAD:
            clock.now = end
            patient = await _patient(store, story)
            if patient is None:
                return 0  # seeded before: the demo patients exist
            created += await _replay(store, clock, story, patient, therapists[story.therapist], end)
        return created


async def _replay(
    store: ResourceStore,
    clock: _WalkingClock,
    story: DemoCourse,
    patient: str,
    therapist: str,
    now: datetime,
) -> int:
    start = (now - timedelta(weeks=story.weeks_ago)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    clock.now = min(start - timedelta(days=1), now)
    course_id = await service.enrol(store, _enrolment(story, patient, therapist, start))
    if story.ending == "draft":
        return 1
    clock.now = start
    await service.activate(store, course_id)
    for number, (description, status) in enumerate(story.practice, start=1):
        await service.add_practice(store, course_id, PracticeRequest(description=description))
        if status != "not-started":
            await service.update_practice(store, course_id, number, PracticeUpdate(status=status))
    for slot, letter in enumerate(story.attendance):
        await _session(store, clock, course_id, story, slot, letter, start + timedelta(weeks=slot))
    if story.end_weeks_ago is not None:
        clock.now = now - timedelta(weeks=story.end_weeks_ago)
    created = 1 + await _ending(store, clock, story, course_id)
    clock.now = now
    return created


async def _ending(
    store: ResourceStore, clock: _WalkingClock, story: DemoCourse, course_id: str
) -> int:
    if story.ending == "stopped":
        await service.stop(store, course_id, story.reason or "Stopped")
    elif story.ending == "on-hold":
        await service.hold(store, course_id, story.reason)
    elif story.ending in ("completed", "maintenance"):
        await service.complete(store, course_id)
    if story.ending != "maintenance":
        return 0
    start = clock.now + timedelta(days=7)
    clock.now = start
    request = MaintenanceRequest(start=start, months=24)
    maintenance_id = await service.start_maintenance(store, course_id, request)
    for slot, letter in enumerate(story.maintenance, start=1):
        await _session(store, clock, maintenance_id, story, -1, letter, add_months(start, slot))
    return 1


async def _session(
    store: ResourceStore,
    clock: _WalkingClock,
    course_id: str,
    story: DemoCourse,
    slot: int,
    letter: str,
    when: datetime,
) -> None:
    if letter not in _OUTCOMES:
        return
    clock.now = when + timedelta(hours=1)  # recorded when it is over
    score = story.scores.get(slot) if letter == "A" else None
    request = SessionRequest.model_validate(
        {
            "start": when,
            "minutes": story.minutes,
            "outcome": _OUTCOMES[letter],
            "mode": story.mode,
            "phq9": {"total": score[0], "item9": score[1]} if score else None,
        }
    )
    await service.record_session(store, course_id, request)


def _enrolment(
    story: DemoCourse, patient: str, therapist: str, start: datetime
) -> EnrolmentRequest:
    area = story.problem_areas[0]
    return EnrolmentRequest.model_validate(
        {
            "patient": {"reference": patient},
            "therapist": therapist,
            "conditions": list(story.conditions),
            "problem_areas": list(story.problem_areas),
            "planned_sessions": story.planned,
            "session_minutes": story.minutes,
            "start": start,
            "interpersonal_goals": [{"text": goal, "problem_area": area} for goal in story.goals],
            "baseline_phq9": {"total": story.baseline, "item9": 0},
            "identifier": f"{story.key}-course",
        }
    )


async def _patient(store: ResourceStore, story: DemoCourse) -> str | None:
    """Create the story's Patient; None when it exists already."""
    patient = {
        "resourceType": "Patient",
        "text": narrative(f"{story.given} {story.family} (demo patient)", []),
        "identifier": [{"system": DEMO_PATIENT_SYSTEM, "value": story.key}],
        "name": [{"family": story.family, "given": [story.given]}],
        "gender": story.gender,
        "birthDate": story.birth_date,
    }
    criteria = urlencode({"identifier": f"{DEMO_PATIENT_SYSTEM}|{story.key}"})
    created = await store.create("Patient", patient, if_none_exist=criteria)
    return f"Patient/{created.stored.id}" if created.changed else None


async def _therapist(store: ResourceStore, key: str, family: str, given: str) -> str:
    practitioner = {
        "resourceType": "Practitioner",
        "text": narrative(f"{given} {family} (demo therapist)", []),
        "identifier": [{"system": _THERAPIST_SYSTEM, "value": key}],
        "name": [{"family": family, "given": [given]}],
    }
    criteria = urlencode({"identifier": f"{_THERAPIST_SYSTEM}|{key}"})
    created = await store.create("Practitioner", practitioner, if_none_exist=criteria)
    return f"Practitioner/{created.stored.id}"
