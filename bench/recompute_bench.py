"""Status engine benchmarks (issue 11): first computation, unchanged recompute, idle polls.

Seeds courses straight into the store's tables and the IPT projections with COPY (the same
rows the API would write: a CarePlan per course, ~12 sessions, ~4 PHQ-9 values), then runs
the real `Recomputer` in worker processes as `ipt-worker` runs it (its own engine, the app's
write listeners, the start-up heap frozen) until every course is computed: first with nothing
stored (status, events, write-backs), then again after every course is re-queued with nothing
changed (`ipt recompute --all`). Each worker count gets a freshly seeded database: one process,
then one per core (workers share the queue through SKIP LOCKED, as replicas do). Last, it times
one idle poll of the loop (`run_once`, nothing due) with 1,000, 10,000 and 100,000 queued
requests. Results: bench/results/recompute.md and .json.
Run: `python -m bench recompute [--courses N] [--batch-size N] [--workers N ...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.embedded_db import migrated_engine
from bench.results_file import write_results
from ipt_core.composition import write_listeners
from ipt_core.db.engine import create_engine
from ipt_core.heap import freeze_startup_heap
from ipt_core.ipt import Course, course_to_careplan
from ipt_core.queue import request_recompute
from ipt_worker.recompute import Recomputer

NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
_IDLE_QUEUES = (1_000, 10_000, 100_000)
_DATA = Path(".bench") / "pg-recompute"  # `migrated_engine`'s cluster
_PHASES = (
    ("first", "first computation: status + events + write-backs"),
    ("unchanged", "recompute --all, nothing changed"),
)


def main() -> None:
    """Seed, recompute everything with each worker count, measure idle polls, write results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=sorted({1, os.cpu_count() or 1}),
        help="worker process counts to measure, each on a fresh database (default: 1 and cores)",
    )
    args = parser.parse_args()
    asyncio.run(_main(args.courses, args.batch_size, args.workers))


async def _main(courses: int, batch_size: int, worker_counts: list[int]) -> None:
    runs: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    for position, workers in enumerate(worker_counts):
        last = position == len(worker_counts) - 1
        async with migrated_engine(_DATA.name, pool_size=4) as engine:
            url = engine.url.render_as_string(hide_password=False)
            postmaster = int((_DATA / "postmaster.pid").read_text().split()[0])
            started = time.perf_counter()
            await _seed(engine, courses)
            print(f"seeded {courses} courses in {time.perf_counter() - started:.1f} s")
            for phase, label in _PHASES:
                if phase == "unchanged":  # as after a rule change: `ipt recompute --all`
                    async with engine.begin() as conn:
                        ids = list(await conn.scalars(text("SELECT id FROM ipt_course")))
                        await request_recompute(conn, ids, NOW)
                run = await asyncio.to_thread(
                    _full_recompute, url, workers, batch_size, label, postmaster
                )
                runs.append({"phase": phase, "workers": workers, **run})
            if last:
                idle = [await _idle_poll(engine, queued) for queued in _IDLE_QUEUES]
    path = write_results(
        "recompute",
        {"courses": courses, "batch_size": batch_size, "runs": runs, "idle_polls": idle},
        _markdown(courses, batch_size, runs, idle),
    )
    print(f"results: {path}")


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


def _full_recompute(
    url: str, workers: int, batch_size: int, label: str, postmaster: int
) -> dict[str, Any]:
    """Run `workers` worker processes until nothing is due; return what they did and spent."""
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as deployed
    # Passed twice: the clock starts once every worker is connected, and the workers stay
    # connected until PostgreSQL's CPU is read (an ended backend's CPU leaves /proc with it).
    ready = context.Barrier(workers + 1)
    reports = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, batch_size, ready, reports))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    ready.wait(timeout=120)
    server_cpu = _server_cpu(postmaster)
    done = [reports.get(timeout=600) for _ in processes]
    server_cpu = _server_cpu(postmaster) - server_cpu
    ready.wait(timeout=60)
    for process in processes:
        process.join()
    courses = sum(report["courses"] for report in done)
    elapsed = max(report["finished"] for report in done) - min(report["started"] for report in done)
    cpu = sum(report["cpu"] for report in done)
    per_course_ms = 1000 * (cpu + server_cpu) / max(courses, 1)
    print(
        f"full recompute: {courses} courses in {elapsed:.1f} s = {courses / elapsed:.0f} "
        f"courses/s ({workers} worker process{'es' if workers > 1 else ''}, batches of "
        f"{batch_size}; {label})"
    )
    # On a busy machine the wall clock says little: the CPU both sides spent per course does.
    print(
        f"  CPU: workers {cpu:.2f} s + PostgreSQL {server_cpu:.2f} s = {per_course_ms:.3f} ms "
        f"per course (= {courses / max(cpu + server_cpu, 1e-9):.0f} courses/s per core)"
    )
    return {
        "courses": courses,
        "seconds": round(elapsed, 3),
        "courses_per_s": round(courses / elapsed),
        "worker_cpu_s": round(cpu, 3),
        "postgres_cpu_s": round(server_cpu, 3),
        "cpu_ms_per_course": round(per_course_ms, 4),
    }


def _worker(url: str, batch_size: int, ready: Any, reports: Any) -> None:
    """One worker process: the recompute loop as `ipt-worker` runs it, until nothing is due."""
    asyncio.run(_recompute_until_idle(url, batch_size, ready, reports))


async def _recompute_until_idle(url: str, batch_size: int, ready: Any, reports: Any) -> None:
    engine = create_engine(url, pool_size=2)
    recomputer = Recomputer(
        engine, clock=lambda: NOW, listeners=write_listeners(), batch_size=batch_size
    )
    try:
        await recomputer.liveness.ensure()  # connected and registered before the clock starts
        freeze_startup_heap()  # as `ipt-worker` does once started
        ready.wait(timeout=120)  # nothing else runs on this loop yet: blocking is fine
        started, cpu, courses = time.time(), time.process_time(), 0
        while claimed := await recomputer.run_once():
            courses += claimed
        finished, cpu = time.time(), time.process_time() - cpu
        reports.put({"courses": courses, "cpu": cpu, "started": started, "finished": finished})
        ready.wait(timeout=60)
    finally:
        await recomputer.close()
        await engine.dispose()


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


async def _idle_poll(engine: AsyncEngine, queued: int) -> dict[str, Any]:
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
    return {
        "queued": queued,
        "p50_ms": round(statistics.median(timings), 3),
        "p99_ms": round(p99, 3),
    }


def _markdown(
    courses: int, batch_size: int, runs: list[dict[str, Any]], idle: list[dict[str, Any]]
) -> str:
    labels = dict(_PHASES)
    lines = [
        f"# Status engine: {courses:,} courses, batches of {batch_size}",
        "",
        "| phase | worker processes | courses/s | worker CPU s | PostgreSQL CPU s "
        "| CPU ms per course |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {labels[run['phase']]} | {run['workers']} | {run['courses_per_s']:,} "
            f"| {run['worker_cpu_s']:.2f} | {run['postgres_cpu_s']:.2f} "
            f"| {run['cpu_ms_per_course']:.3f} |"
            for run in runs
        ),
        "",
        "| idle poll, requests queued (none due) | p50 ms | p99 ms |",
        "| ---: | ---: | ---: |",
        *(f"| {poll['queued']:,} | {poll['p50_ms']:.2f} | {poll['p99_ms']:.2f} |" for poll in idle),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
