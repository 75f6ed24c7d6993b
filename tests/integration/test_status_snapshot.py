"""Snapshot then stream: the example consumer keeps an exact copy while writes go on.

The consumer (examples/status_consumer.py) runs in a thread against a real uvicorn server,
slowly, while sessions are recorded, the worker recomputes and the relay publishes in this
test's event loop. At the end its table must equal `course_status`, and for every course
it must have seen every version after the one its snapshot gave: none lost, none applied
twice.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_api.analytics.snapshot import current_feed_position
from ipt_core.composition import write_listeners
from ipt_core.events import stamp_published, unpublished
from ipt_worker.loop import run_recompute_loop
from ipt_worker.recompute import Recomputer
from ipt_worker.relay import EventRelay
from tests.integration.events_support import (
    append_course_events,
    fast_timing,
    running,
)
from tests.integration.ipt_helpers import Clock, enrol, enrolment, patient, record
from tests.support.database import query_scalar
from tests.support.waiting import poll_until

_spec = importlib.util.spec_from_file_location(
    "status_consumer", Path(__file__).parents[2] / "examples" / "status_consumer.py"
)
assert _spec is not None
assert _spec.loader is not None
status_consumer: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(status_consumer)

COURSES = 8
WRITES = 24


async def feed_end(db: AsyncEngine) -> int:
    return int(await query_scalar(db, "SELECT coalesce(max(feed_position), 0) FROM outbox"))


async def settled(db: AsyncEngine) -> bool:
    pending = await query_scalar(
        db,
        "SELECT (SELECT count(*) FROM recompute_request WHERE due_at <= now()) "
        "+ (SELECT count(*) FROM outbox WHERE published_at IS NULL)",
    )
    return bool(pending == 0)


async def test_snapshot_then_stream_keeps_an_exact_copy_under_concurrent_writes(
    ipt: httpx.AsyncClient,
    db: AsyncEngine,
    clock: Clock,
    live_server: str,
    tmp_path: Path,
) -> None:
    clock.now = datetime.now(UTC)  # the recompute loop's due times compare with now()
    courses = [
        await enrol(ipt, enrolment(await patient(ipt), start="2026-01-05T09:00:00Z"))
        for _ in range(COURSES)
    ]
    stop = asyncio.Event()
    worker = Recomputer(db, clock=clock, listeners=write_listeners())
    loop_task = asyncio.create_task(run_recompute_loop(worker, stop, poll_interval_s=0.05))
    relay = EventRelay(db, [], clock=clock, timing=fast_timing(poll_interval_s=0.05))
    async with running(relay):
        await poll_until(lambda: settled(db), within_s=60)

        database = sqlite3.connect(tmp_path / "statuses.sqlite", check_same_thread=False)
        base = live_server.removesuffix("/fhir")
        http = httpx.Client(base_url=base, timeout=30)
        consumer = status_consumer.StatusConsumer(http, database, page_size=2)
        consumer.after_page = lambda: threading.Event().wait(0.15)  # a slow reader
        snapshot_versions: dict[str, int] = {}
        original_apply = consumer.apply

        def apply(course_id: str, status: dict[str, Any]) -> bool:
            if consumer.cursor() is None:  # still in the snapshot
                snapshot_versions[course_id] = status["version"]
            return bool(original_apply(course_id, status))

        consumer.apply = apply
        snapshot = asyncio.create_task(asyncio.to_thread(consumer.snapshot))

        sessions = dict.fromkeys(courses, 0)
        rng = random.Random(14)
        for _ in range(WRITES):  # while the snapshot is being read, and after
            course = rng.choice(courses)
            sessions[course] += 1
            start = datetime(2026, 1, 12, 9, tzinfo=UTC) + timedelta(weeks=sessions[course])
            outcome = rng.choice(["attended", "attended", "no-show"])
            await record(ipt, course, start=start.isoformat(), outcome=outcome)
            await asyncio.sleep(rng.uniform(0.0, 0.08))
        await snapshot
        await poll_until(lambda: settled(db), within_s=60)
        end = await feed_end(db)
        while (consumer.cursor() or 0) < end:
            await asyncio.to_thread(consumer.follow, wait_s=0.2, until_idle=True)
        stop.set()
        await loop_task
        await worker.close()

    async with db.connect() as conn:
        stored = {
            row.course_id: (row.version, row.status)
            for row in await conn.execute(
                text("SELECT course_id, version, status FROM course_status")
            )
        }
    copied = {
        course_id: (version, orjson.loads(status))
        for course_id, version, status in database.execute(
            "SELECT course_id, version, status FROM course_status"
        )
    }
    assert copied == stored
    assert len(consumer.applied) == len(set(consumer.applied))  # nothing applied twice
    for course_id, (version, _) in stored.items():
        seen = {v for c, v in consumer.applied if c == course_id}
        first = snapshot_versions.get(course_id, 0)
        assert set(range(first + 1, version + 1)) <= seen, course_id  # no change lost
    assert any(version > snapshot_versions.get(c, 0) for c, (version, _) in stored.items())
    await asyncio.to_thread(http.close)


async def test_feed_after_covers_a_publication_not_yet_committed(db: AsyncEngine) -> None:
    """A position drawn by a publication not yet committed is already <= `feed_after`.

    Fact 3 of the argument in docs/analytics.md: the sequence shows a drawn position at
    once, not when its transaction commits (the table does not show it yet).
    """
    await append_course_events(db, ["c-1"], 1)
    async with db.connect() as publisher, publisher.begin():
        events = await unpublished(publisher, 10)
        await stamp_published(publisher, [e.seq for e in events], datetime.now(UTC), fan_out=False)
        async with db.connect() as reader:
            assert await current_feed_position(reader) == 1  # not committed yet
            visible = await reader.scalar(text("SELECT max(feed_position) FROM outbox"))
            assert visible is None
    async with db.connect() as reader:
        assert await current_feed_position(reader) == 1
