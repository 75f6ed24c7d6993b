"""Worker processes sharing one database: each change computed exactly once, even across a
SIGKILL in the middle of a batch (the killed worker's liveness lock dies with it and another
worker takes its leases over; tests/chaos/test_worker_kill.py times that).
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.ipt_helpers import enrol, enrolment, patient, record
from tests.support.waiting import poll_until
from tests.support.worker import running_worker

LEASE_S = 5
# Requests leased and not run out: a batch claimed and not yet stored.
_CLAIMED_BY_LIVE_WORKER = (
    "SELECT count(*) FROM recompute_request WHERE claimed_by IS NOT NULL AND claimed_until > now()"
)


def worker_process(
    database_url: str, *, batch_size: int
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    settings = {
        "IPT_POLL_INTERVAL_S": "0.05",
        "IPT_BATCH_SIZE": str(batch_size),
        "IPT_LEASE_S": str(LEASE_S),
    }
    return running_worker(database_url, settings)


async def courses(client: httpx.AsyncClient, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        course_id = await enrol(client, enrolment(await patient(client)))
        await record(client, course_id, start="2026-01-05T09:00:00Z")
        ids.append(course_id)
    return ids


async def scalar(db: AsyncEngine, sql: str) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(text(sql)) or 0)


async def wait_until(
    db: AsyncEngine, sql: str, predicate: Callable[[int], bool], timeout_s: float
) -> int:
    """The value of `sql` once `predicate` accepts it."""
    return await poll_until(
        lambda: scalar(db, sql), until=predicate, within_s=timeout_s, every_s=0.05, what=sql
    )


async def status_changes_per_course(db: AsyncEngine) -> Counter[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT aggregateid FROM outbox WHERE type = 'ipt.course.status.changed'")
        )
        return Counter(row.aggregateid for row in rows)


async def test_two_workers_compute_each_change_exactly_once(
    ipt: httpx.AsyncClient, db: AsyncEngine, database_url: str
) -> None:
    ids = await courses(ipt, 24)
    with worker_process(database_url, batch_size=4), worker_process(database_url, batch_size=4):
        await wait_until(db, "SELECT count(*) FROM course_status", lambda n: n == len(ids), 60)
        await wait_until(
            db,
            "SELECT count(*) FROM recompute_request WHERE claimed_by IS NOT NULL",
            lambda n: n == 0,
            30,
        )
    assert await status_changes_per_course(db) == Counter(dict.fromkeys(ids, 1))
    assert await scalar(db, "SELECT max(version) FROM course_status") == 1


async def test_a_worker_killed_mid_batch_loses_nothing(
    ipt: httpx.AsyncClient, db: AsyncEngine, database_url: str
) -> None:
    ids = await courses(ipt, 40)
    # The test holds `course_status` in SHARE mode, so the worker's first batch waits to store
    # with its claim held (its transaction open): the kill lands mid-batch every time. (Killed
    # at a moment it happened to be between batches, the worker held no lease, and this test
    # was flaky.)
    async with db.connect() as blocker:
        await blocker.begin()
        await blocker.execute(text("LOCK TABLE course_status IN SHARE MODE"))
        with worker_process(database_url, batch_size=4) as doomed:
            await wait_until(db, _CLAIMED_BY_LIVE_WORKER, lambda n: n >= 1, 60)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=10)
        await blocker.rollback()
    assert await scalar(db, "SELECT count(*) FROM course_status") == 0  # its batch rolled back
    leased = await scalar(db, "SELECT count(*) FROM recompute_request WHERE claimed_by IS NOT NULL")
    assert leased > 0  # the dead worker's leases are still held
    with worker_process(database_url, batch_size=4):
        await wait_until(
            db, "SELECT count(*) FROM course_status", lambda n: n == len(ids), LEASE_S + 60
        )
    assert await status_changes_per_course(db) == Counter(dict.fromkeys(ids, 1))
