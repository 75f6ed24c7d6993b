"""Status engine benchmarks (issue 11): first computation, unchanged recompute, idle polls.

Seeds courses straight into the store's tables and the IPT projections with COPY (the same
rows the API would write: a CarePlan per course, ~12 sessions, ~4 PHQ-9 values), then runs
the real `Recomputer` (one process, the app's write listeners) until every course is
computed: first with nothing stored (status, events, write-backs), then again after every
course is re-queued with nothing changed (`ipt recompute --all`). Last, it times one idle
poll of the loop (`run_once`, nothing due) with 1,000, 10,000 and 100,000 queued requests.
Run: `python -m bench recompute [--courses N] [--batch-size N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.composition import write_listeners
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.ipt import Course, course_to_careplan
from ipt_core.queue import request_recompute
from ipt_worker.recompute import Recomputer

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
_IDLE_QUEUES = (1_000, 10_000, 100_000)
_DATA = Path(".bench") / "pg-recompute"


def main() -> None:
    """Seed, recompute everything, measure idle polls."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(_main(args.courses, args.batch_size))


async def _main(courses: int, batch_size: int) -> None:
    cluster = EmbeddedPostgres(_DATA, throwaway=True)
    cluster.stop()
    shutil.rmtree(_DATA, ignore_errors=True)
    server = cluster.start()
    postmaster = int((_DATA / "postmaster.pid").read_text().split()[0])
    engine = create_engine(server.url("postgres"), pool_size=4)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        await _seed(engine, courses)
        print(f"seeded {courses} courses in {time.perf_counter() - started:.1f} s")
        await _full_recompute(
            engine,
            courses,
            batch_size,
            "first computation: status + events + write-backs",
            postmaster,
        )
        async with engine.begin() as conn:  # as after a rule change: `ipt recompute --all`
            ids = list(await conn.scalars(text("SELECT id FROM ipt_course")))
            await request_recompute(conn, ids, NOW)
        await _full_recompute(
            engine, courses, batch_size, "recompute --all, nothing changed", postmaster
        )
        for queued in _IDLE_QUEUES:
            await _idle_poll(engine, queued)
    finally:
        await engine.dispose()
        cluster.stop()


async def _seed(engine: AsyncEngine, count: int) -> None:
    resources, courses, sessions, measures = [], [], [], []
    for n in range(count):
        course_id, patient = f"c{n}", f"p{n}"
        start = NOW - timedelta(days=7 * (n % 25) + 1)
        careplan = course_to_careplan(
            Course(
                id=course_id,
                patient=f"Patient/{patient}",
                problem_areas=("grief",),
                start=start,
                status="active",
            )
        )
        careplan |= {
            "id": course_id,
            "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00Z"},
        }
        resources.append(("CarePlan", course_id, 1, NOW, False, orjson.dumps(careplan).decode()))
        repeat = careplan["activity"][0]["detail"]["scheduledTiming"]["repeat"]
        courses.append(
            (
                course_id,
                patient,
                "active",
                "acute",
                ["grief"],
                20,
                60,
                orjson.dumps(repeat).decode(),
                start,
                False,
            )
        )
        for week in range(n % 13):
            status = "noshow" if week % 5 == 4 else "fulfilled"
            sessions.append(
                (
                    "Appointment",
                    f"a{n}-{week}",
                    patient,
                    course_id,
                    "extension",
                    status,
                    start + timedelta(weeks=week),
                    60,
                    True,
                )
            )
        for k in range(4):
            measures.append(
                (
                    f"o{n}-{k}",
                    patient,
                    "44261-6",
                    "final",
                    start + timedelta(weeks=3 * k),
                    max(0, 18 - 3 * k - n % 4),
                )
            )
    async with engine.begin() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        await raw.copy_records_to_table(
            "resource",
            records=resources,
            columns=["resource_type", "id", "version_id", "last_updated", "deleted", "content"],
        )
        await raw.copy_records_to_table(
            "ipt_course",
            records=courses,
            columns=[
                "id",
                "patient_id",
                "status",
                "course_type",
                "problem_areas",
                "planned_sessions",
                "session_minutes",
                "timing",
                "period_start",
                "recurrent",
            ],
        )
        await raw.copy_records_to_table(
            "ipt_session",
            records=sessions,
            columns=[
                "resource_type",
                "resource_id",
                "patient_id",
                "course_id",
                "link_reason",
                "status",
                "start",
                "minutes",
                "is_ipt",
            ],
        )
        await raw.copy_records_to_table(
            "ipt_measure",
            records=measures,
            columns=["observation_id", "patient_id", "code", "status", "effective", "value"],
        )
        await request_recompute(conn, [c[0] for c in courses], NOW)
        await conn.execute(text("ANALYZE"))


async def _full_recompute(
    engine: AsyncEngine, count: int, batch_size: int, label: str, postmaster: int
) -> None:
    recomputer = Recomputer(
        engine, clock=lambda: NOW, listeners=write_listeners(), batch_size=batch_size
    )
    started, cpu, server_cpu = time.perf_counter(), time.process_time(), _server_cpu(postmaster)
    done = 0
    while claimed := await recomputer.run_once():
        done += claimed
    await recomputer.close()
    elapsed = time.perf_counter() - started
    cpu, server_cpu = time.process_time() - cpu, _server_cpu(postmaster) - server_cpu
    print(
        f"full recompute: {done} courses in {elapsed:.1f} s = {done / elapsed:.0f} courses/s "
        f"(1 worker process, batches of {batch_size}; {label})"
    )
    # On a busy machine the wall clock says little: the CPU both sides spent per course does.
    print(
        f"  CPU: worker {cpu:.2f} s + PostgreSQL {server_cpu:.2f} s = "
        f"{1000 * (cpu + server_cpu) / max(done, 1):.3f} ms per course "
        f"(= {done / max(cpu + server_cpu, 1e-9):.0f} courses/s if nothing else ran)"
    )


def _server_cpu(postmaster: int) -> float:
    """CPU seconds (user + system) of the cluster's processes so far (Linux /proc)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(entry.name) == postmaster or int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _idle_poll(engine: AsyncEngine, queued: int) -> None:
    """One poll of the loop (`run_once`) with `queued` requests, all armed in the future."""
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM recompute_request"))
        await conn.execute(
            text(
                "INSERT INTO recompute_request (course_id, due_at, generation, attempts) "
                "SELECT 'x' || n, :later, 1, 0 FROM generate_series(1, :n) AS n"
            ),
            {"later": NOW + timedelta(days=30), "n": queued},
        )
        await conn.execute(text("ANALYZE recompute_request"))
    recomputer = Recomputer(engine, clock=lambda: NOW, listeners=write_listeners())
    timings = []
    for _ in range(300):
        started = time.perf_counter()
        claimed = await recomputer.run_once()
        timings.append((time.perf_counter() - started) * 1000)
        assert claimed == 0
    await recomputer.close()
    async with engine.connect() as conn:
        plan = await conn.execute(
            text(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT course_id FROM recompute_request "
                "WHERE due_at <= :now AND (claimed_until IS NULL OR claimed_until < :now) "
                "ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED"
            ),
            {"now": NOW},
        )
        lines = [row[0] for row in plan]
    timings = timings[50:]  # the first polls warm the pool and the statement cache
    p99 = statistics.quantiles(timings, n=100)[98]
    print(
        f"idle poll with {queued} queued courses, none due: p50 "
        f"{statistics.median(timings):.2f} ms, p99 {p99:.2f} ms"
    )
    print("  plan: " + "\n        ".join(lines))


if __name__ == "__main__":
    main()
