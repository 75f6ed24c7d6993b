"""Search latency at 1,000 and 50,000 IPT courses (issue 3's benchmark; not a test).

    .venv/bin/python -m bench search [--courses N ...] [--requests R]

Seeds an embedded PostgreSQL under ./.bench/ through the store's bulk-load path (per course:
a Patient, a CarePlan, 20 Encounters, 5 PHQ-9 Observations), grows it to each size in turn,
then times three searches through the real ASGI app and prints p50/p99 and the EXPLAIN
(ANALYZE) plans of their SQL.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.dataset import course_resources, ident
from ipt_api.app import create_app
from ipt_api.settings import ApiSettings
from ipt_core.db.embedded import EmbeddedPostgres
from ipt_core.db.engine import create_engine
from ipt_core.db.migrate import upgrade
from ipt_core.db.provision import Database
from ipt_core.fhir.bulk import bulk_load, deferred_indexes
from ipt_core.fhir.search import page_statement, parse_search, revinclude_statement, sort_plan
from ipt_core.fhir.validation import check_resource
from ipt_core.ipt import codes, rule_violations

_DATABASE = "bench"
_COURSES_PER_COMMIT = 500


def check_course(course: int) -> None:
    """Fail unless a generated course is valid R4 and keeps the IPT rules (the API's checks)."""
    resources = list(course_resources(course))
    careplan = next(r for r in resources if r["resourceType"] == "CarePlan")
    for resource in resources:
        check_resource(resource)
        related = careplan if resource["resourceType"] == "Encounter" else None
        violations = rule_violations(resource, related)
        assert not violations, violations


async def seed(engine: AsyncEngine, first: int, last: int) -> float:
    """Bulk-load courses [first, last); return the seconds it took."""
    check_course(first)
    began = time.perf_counter()
    async with deferred_indexes(engine):
        for chunk in range(first, last, _COURSES_PER_COMMIT):
            async with engine.begin() as conn:
                resources = (
                    r
                    for c in range(chunk, min(last, chunk + _COURSES_PER_COMMIT))
                    for r in course_resources(c)
                )
                await bulk_load(conn, resources, now=datetime.now(UTC), validate=False)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - began


def queries(patient: str) -> dict[str, str]:
    """The three benchmark searches for one patient."""
    loinc = f"{codes.LOINC}|{codes.PHQ9_TOTAL}"
    return {
        "encounters by patient, -date": f"/fhir/Encounter?patient={patient}&_sort=-date&_count=20",
        "PHQ-9 by patient and code": f"/fhir/Observation?patient={patient}&code={loinc}",
        "patient + _revinclude": f"/fhir/Patient?_id={patient}&_revinclude=Encounter:subject",
    }


async def measure(
    engine: AsyncEngine, courses: int, requests: int
) -> dict[str, tuple[float, float]]:
    """Time each search `requests` times for random patients; return (p50, p99) in ms."""
    settings = ApiSettings.model_validate({"auth_mode": "disabled", "api_host": "127.0.0.1"})
    app = create_app(settings, database=Database(engine))
    chooser = random.Random(courses)
    timings: dict[str, list[float]] = {name: [] for name in queries("x")}
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for round_ in range(requests + 20):
                patient = ident("patient", chooser.randrange(courses))
                for name, url in queries(patient).items():
                    began = time.perf_counter()
                    response = await client.get(url)
                    elapsed = (time.perf_counter() - began) * 1000
                    assert response.status_code == 200, response.text
                    if round_ >= 20:  # the first rounds warm caches and prepared statements
                        timings[name].append(elapsed)
    return {name: _percentiles(values) for name, values in timings.items()}


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


async def explain(engine: AsyncEngine, courses: int) -> None:
    """Print EXPLAIN (ANALYZE, BUFFERS) of the SQL behind the three searches."""
    patient = ident("patient", courses // 2)
    loinc = f"{codes.LOINC}|{codes.PHQ9_TOTAL}"
    encounters = parse_search(
        "Encounter", [("patient", patient), ("_sort", "-date"), ("_count", "20")]
    )
    phq = parse_search("Observation", [("patient", patient), ("code", loinc)])
    rev = parse_search("Patient", [("_id", patient), ("_revinclude", "Encounter:subject")])
    statements = {
        "encounters by patient, -date": page_statement(encounters, sort_plan(encounters), None),
        "PHQ-9 by patient and code": page_statement(phq, sort_plan(phq), None),
        "_revinclude Encounter:subject": revinclude_statement(
            rev.revincludes[0], "Patient", [patient]
        ),
    }
    async with engine.connect() as conn:
        for name, statement in statements.items():
            sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
            print(f"\n-- {name} ({courses} courses)")
            print("\n".join(row[0] for row in plan))


async def run(sizes: list[int], requests: int) -> None:
    """Grow the database through `sizes` and report each size's latencies and plans."""
    server = EmbeddedPostgres(Path(".bench") / "pg", throwaway=True).start()
    admin = create_async_engine(server.url(), isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{_DATABASE}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{_DATABASE}"'))
    await admin.dispose()
    engine = create_engine(server.url(_DATABASE))
    await upgrade(engine)
    loaded = 0
    report = []
    for size in sorted(sizes):
        seconds = await seed(engine, loaded, size)
        print(f"seeded courses {loaded}..{size} in {seconds:.0f} s", flush=True)
        loaded = size
        latencies = await measure(engine, size, requests)
        report.append((size, seconds, latencies))
        await explain(engine, size)
    await engine.dispose()
    print("\ncourses   search                            p50 ms   p99 ms")
    for size, _, latencies in report:
        for name, (p50, p99) in latencies.items():
            print(f"{size:>7}   {name:<32} {p50:>7.2f}  {p99:>7.2f}")


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--courses",
        type=int,
        action="append",
        help="course counts to grow to, in turn (default: 1000 and 50000)",
    )
    parser.add_argument("--requests", type=int, default=300, help="timed requests per search")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.courses or [1000, 50_000], arguments.requests))


if __name__ == "__main__":
    main()
