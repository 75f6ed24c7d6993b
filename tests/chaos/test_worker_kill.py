"""A worker SIGKILLed mid-run: its leases are taken over at once (its liveness lock died with
its session), so every status is current within 5 s of a restart, not after the lease.

A claimed batch is stored in one transaction (docs/architecture.md), so the workers here take
small batches: a kill lands between stored batches, with one batch claimed and not stored."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from contextlib import AbstractContextManager

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.chaos.support import FIGURES
from tests.integration.ipt_helpers import enrol, enrolment, patient, record
from tests.support.waiting import poll_until
from tests.support.worker import running_worker

pytestmark = pytest.mark.chaos

COURSES = 20
BATCH = 2  # a batch is stored in one transaction: "mid-run" means between small batches
LEASE_S = 60  # the default: a takeover that waited for the lease would take a minute


def worker_process(database_url: str) -> AbstractContextManager[subprocess.Popen[bytes]]:
    settings = {
        "IPT_POLL_INTERVAL_S": "0.1",
        "IPT_BATCH_SIZE": str(BATCH),
        "IPT_LEASE_S": str(LEASE_S),
        "IPT_EVENT_PUBLISHERS": "log",
    }
    return running_worker(database_url, settings, stop_within_s=30)


async def scalar(db: AsyncEngine, sql: str) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(text(sql)) or 0)


async def all_current(db: AsyncEngine) -> bool:
    stored = await scalar(db, "SELECT count(*) FROM course_status")
    waiting = await scalar(db, "SELECT count(*) FROM recompute_request WHERE due_at <= now()")
    return stored == COURSES and waiting == 0


async def test_a_worker_stopped_or_killed_mid_batch_leaves_no_status_stale(
    ipt: httpx.AsyncClient, db: AsyncEngine, database_url: str
) -> None:
    ids = []
    for _ in range(COURSES):
        course_id = await enrol(ipt, enrolment(await patient(ipt)))
        await record(ipt, course_id, start="2026-01-05T09:00:00Z")
        ids.append(course_id)

    # SIGTERM mid-batch: the worker gives back what it has not computed and exits promptly.
    with worker_process(database_url) as stopping:
        await poll_until(lambda: _stored(db, at_least=1), within_s=60, what="a first status")
        stopping.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.to_thread(stopping.wait, 20)
        stop_s = time.monotonic() - signalled
    after_stop = await scalar(db, "SELECT count(*) FROM course_status")
    held_after_stop = await scalar(
        db, "SELECT count(*) FROM recompute_request WHERE claimed_by IS NOT NULL"
    )
    assert held_after_stop == 0, "a stopped worker kept leases"

    # SIGKILL mid-batch: its leases stay in the table, but its liveness lock is gone.
    with worker_process(database_url) as doomed:
        # Killed while it holds a claimed batch (it does most of the time, not between two).
        await poll_until(
            lambda: _stored_and_leased(db, at_least=after_stop + 1),
            within_s=60,
            every_s=0.005,
            what="another status, with a batch claimed",
        )
        doomed.send_signal(signal.SIGKILL)
        await asyncio.to_thread(doomed.wait, 10)
    stored_before = await scalar(db, "SELECT count(*) FROM course_status")
    leased = await scalar(db, "SELECT count(*) FROM recompute_request WHERE claimed_until > now()")
    assert stored_before < COURSES, "the worker finished before it could be killed"
    assert leased > 0, "the killed worker held no lease: nothing was tested"
    restarted = time.monotonic()
    with worker_process(database_url):
        # Python's imports alone take 1-5 s depending on the machine's load: measured apart.
        await poll_until(
            lambda: _taken_over(db, stored_before), within_s=LEASE_S / 2, what="takeover"
        )
        first_takeover = time.monotonic() - restarted
        await poll_until(lambda: all_current(db), within_s=LEASE_S / 2, what="statuses current")
        current_after = time.monotonic() - restarted
    FIGURES["worker SIGTERM / SIGKILL mid-batch"] = {
        "courses": COURSES,
        "sigterm_exit_s": round(stop_s, 2),
        "stored_at_sigterm": after_stop,
        "stored_at_sigkill": stored_before,
        "leases_of_the_killed_worker": leased,
        "lease_s": LEASE_S,
        "first_takeover_after_restart_s": round(first_takeover, 2),
        "all_current_after_restart_s": round(current_after, 2),
        "all_current_after_first_takeover_s": round(current_after - first_takeover, 2),
    }
    assert await _status_changes(db) == Counter(dict.fromkeys(ids, 1)), "a change lost or doubled"
    assert stop_s < 10
    assert current_after < LEASE_S / 2, "the leases were waited out, not taken over"
    assert current_after - first_takeover <= 5.0


async def _taken_over(db: AsyncEngine, stored_before: int) -> bool:
    # The first status the new worker stores from the dead worker's batch.
    return await _stored(db, at_least=stored_before + 1)


async def _stored_and_leased(db: AsyncEngine, *, at_least: int) -> bool:
    return (
        await scalar(
            db,
            "SELECT (SELECT count(*) FROM course_status) >= "
            f"{at_least} AND EXISTS (SELECT FROM recompute_request WHERE claimed_until > now())",
        )
        == 1
    )


async def _stored(db: AsyncEngine, *, at_least: int) -> bool:
    return await scalar(db, "SELECT count(*) FROM course_status") >= at_least


async def _status_changes(db: AsyncEngine) -> Counter[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT aggregateid FROM outbox WHERE type = 'ipt.course.status.changed'")
        )
        return Counter(row.aggregateid for row in rows)
