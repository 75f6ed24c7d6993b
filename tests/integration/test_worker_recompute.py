"""The status engine end to end: FHIR writes -> recompute requests -> stored status and events.

Runs the real `Recomputer` against real PostgreSQL with the app's settable clock, so
time-driven transitions are tested by moving the clock, not by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_worker import status_batch
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from tests.integration.ipt_helpers import Clock, enrol, enrolment, fhir_read, patient, record, rows
from tests.support.waiting import poll_until

_started: list[Recomputer] = []


@pytest.fixture(autouse=True)
async def _close_recomputers() -> AsyncIterator[None]:
    yield
    while _started:  # each holds its liveness lock on a connection of its own
        await _started.pop().close()


def recomputer(db: AsyncEngine, clock: Clock, **options: Any) -> Recomputer:
    worker = Recomputer(db, clock=clock, listeners=write_listeners(), **options)
    _started.append(worker)
    return worker


async def drain(worker: Recomputer) -> int:
    total = 0
    while claimed := await worker.run_once():
        total += claimed
    return total


async def stored_status(db: AsyncEngine, course_id: str) -> Any:
    found = await rows(db, "course_status", "course_id = :id", id=course_id)
    return found[0] if found else None


async def worked_example_course(client: httpx.AsyncClient) -> str:
    course_id = await enrol(client, enrolment(await patient(client)))
    for day in ("2026-01-05", "2026-01-12", "2026-01-19"):
        await record(client, course_id, start=f"{day}T09:00:00Z")
    return course_id


async def test_a_recorded_session_is_reflected_in_the_stored_status(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    course_id = await worked_example_course(ipt)
    worker = recomputer(db, clock)
    assert await drain(worker) >= 1
    before = await stored_status(db, course_id)
    assert before.status["sessions_attended"] == 3
    assert before.status["phase"] == "middle"

    await record(ipt, course_id, start="2026-01-26T09:00:00Z")
    assert await drain(worker) == 1
    after = await stored_status(db, course_id)
    assert after.status["sessions_attended"] == 4
    assert after.version == before.version + 1
    served = (await ipt.get(f"/ipt/v1/courses/{course_id}/status")).json()
    assert served["sessions_attended"] == 4
    assert served["version"] == after.version


async def test_the_loop_picks_up_a_write_without_being_asked(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    course_id = await worked_example_course(ipt)
    stop = asyncio.Event()
    loop = asyncio.create_task(
        run_recompute_loop(recomputer(db, clock), stop, poll_interval_s=0.05)
    )
    try:
        await poll_until(  # the loop polls every 50 ms; give it plenty of rounds
            lambda: stored_status(db, course_id),
            until=lambda status: status is not None and status.status["sessions_attended"] == 3,
            within_s=10,
            every_s=0.05,
            what="the loop to store the course's status",
        )
    finally:
        stop.set()
        await loop


async def test_a_course_becomes_overdue_when_time_passes(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    # Sessions attended weekly through 2026-02-23; next due 2026-03-02T09:00 (+3 d grace).
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    for week in range(8):
        day = 5 + 7 * week
        start = f"2026-01-{day:02d}" if day <= 31 else f"2026-02-{day - 31:02d}"
        await record(ipt, course_id, start=f"{start}T09:00:00Z")
    worker = recomputer(db, clock)
    await drain(worker)
    status = await stored_status(db, course_id)
    assert status.status["engagement"] == "on-track"
    assert status.next_transition_at.isoformat() == "2026-03-05T09:00:00.000001+00:00"

    clock.now = status.next_transition_at - timedelta(microseconds=1)
    assert await worker.run_once() == 0  # nothing is due before the transition instant
    clock.now = status.next_transition_at
    assert await worker.run_once() == 1
    overdue = await stored_status(db, course_id)
    assert overdue.status["engagement"] == "overdue"
    types = [
        r.type for r in await rows(db, "outbox", "aggregateid = :id ORDER BY seq", id=course_id)
    ]
    assert types[-2:] == ["ipt.course.status.changed", "ipt.course.engagement.changed"]


async def test_write_backs_reach_the_fhir_resources_without_requeueing(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    course_id = await worked_example_course(ipt)
    worker = recomputer(db, clock)
    await drain(worker)
    careplan = await fhir_read(ipt, f"CarePlan/{course_id}")
    phases = [
        e["valueCoding"]["code"]
        for e in careplan.get("extension", [])
        if e["url"].endswith("/ipt-phase")
    ]
    assert phases == ["middle"]
    goal_id = (await rows(db, "ipt_course", "id = :id", id=course_id))[0].symptom_goal_id
    goal = await fhir_read(ipt, f"Goal/{goal_id}")
    assert goal["achievementStatus"]["coding"][0]["code"] == "in-progress"
    history = (await ipt.get(f"/fhir/CarePlan/{course_id}/_history")).json()
    assert len(history["entry"]) >= 2  # the phase write-back is a version of its own
    due = await rows(
        db, "recompute_request", "course_id = :id AND due_at <= :now", id=course_id, now=clock.now
    )
    assert due == []  # writing the phase back did not ask for another recompute


async def test_status_events_carry_the_queued_trace_when_no_spans_are_recorded(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in a process without a tracer provider (spans_recorded() is then False): the
    # engine makes no span per course and hands on the trace of the write that asked.
    monkeypatch.setattr(status_batch, "spans_recorded", lambda: False)
    course_id = await enrol(ipt, enrolment(await patient(ipt)))
    queued = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE recompute_request SET traceparent = :tp WHERE course_id = :id"),
            {"tp": queued, "id": course_id},
        )
    already = len(await rows(db, "outbox"))
    assert await drain(recomputer(db, clock)) >= 1
    events = [
        e
        for e in (await rows(db, "outbox", "TRUE ORDER BY seq"))[already:]
        if e.type.startswith("ipt.course.")
    ]
    assert events  # the first computation changed the status
    assert {e.traceparent for e in events} == {queued}


async def test_a_failing_course_backs_off_without_blocking_others(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    healthy = await worked_example_course(ipt)
    broken = await worked_example_course(ipt)
    async with db.begin() as conn:  # a projection row no rule can read: planned count -1
        await conn.execute(
            text("UPDATE ipt_course SET timing = '{\"count\": -1}' WHERE id = :id"), {"id": broken}
        )
    worker = recomputer(db, clock)
    await drain(worker)
    assert await stored_status(db, healthy) is not None
    assert await stored_status(db, broken) is None
    (request,) = await rows(db, "recompute_request", "course_id = :id", id=broken)
    assert request.last_error == "ValueError"
    assert request.due_at > clock.now  # backed off, not hot-looping


class _RefusesOneCarePlan:
    """A write listener whose write-back of one CarePlan fails (a fault inside the batch)."""

    def __init__(self, course_id: str) -> None:
        self.course_id = course_id

    async def resource_written(self, conn: Any, change: Any) -> None:
        if change.stored.resource_type == "CarePlan" and change.stored.id == self.course_id:
            raise LookupError("refused")


async def test_a_course_failing_inside_a_batch_backs_off_alone(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    healthy = [await worked_example_course(ipt) for _ in range(3)]
    broken = await worked_example_course(ipt)
    worker = Recomputer(
        db, clock=clock, listeners=[*write_listeners(), _RefusesOneCarePlan(broken)]
    )
    _started.append(worker)
    assert await worker.run_once() == 4  # one batch: it fails, then each course alone
    for course_id in healthy:
        assert (await stored_status(db, course_id)).status["sessions_attended"] == 3
        events = await rows(db, "outbox", "aggregateid = :id ORDER BY seq", id=course_id)
        sequences = [int(event.payload["sequence"]) for event in events]
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert await stored_status(db, broken) is None  # nothing of the failed batch stayed
    assert await rows(db, "course_status_history", "course_id = :id", id=broken) == []
    status_events = await rows(db, "outbox", "aggregateid = :id AND type LIKE 'ipt.%'", id=broken)
    assert status_events == []
    (request,) = await rows(db, "recompute_request", "course_id = :id", id=broken)
    assert request.last_error == "LookupError"
    assert request.due_at > clock.now
    assert request.claimed_by is None
    assert await rows(db, "recompute_request", "course_id = ANY(:ids)", ids=healthy) == []


async def test_a_batch_stores_what_course_by_course_computation_stores(
    ipt: httpx.AsyncClient, db: AsyncEngine, clock: Clock
) -> None:
    courses = [await worked_example_course(ipt) for _ in range(3)]
    async with db.begin() as conn:  # as `ipt recompute --all`: every course at once
        await conn.execute(text("UPDATE recompute_request SET due_at = :now"), {"now": clock.now})
    await drain(recomputer(db, clock, batch_size=1))
    one_by_one = {c: (await stored_status(db, c)).status for c in courses}
    async with db.begin() as conn:  # forget them; compute again, all in one batch
        await conn.execute(text("DELETE FROM course_status"))
        await conn.execute(
            text(
                "INSERT INTO recompute_request (course_id, due_at, generation, attempts) "
                "SELECT id, :now, 1, 0 FROM ipt_course"
            ),
            {"now": clock.now},
        )
    assert await drain(recomputer(db, clock, batch_size=100)) == len(courses)
    assert {c: (await stored_status(db, c)).status for c in courses} == one_by_one
