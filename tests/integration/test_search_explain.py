"""The benchmark's searches use the indexes on a seeded database (no sequential scans).

Seeds 200 courses (5,400 resources, ~50,000 index rows) through the bulk-load path, runs
ANALYZE, and reads the plans PostgreSQL chooses for the three searches of the benchmark.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.dataset import course_resources, ident
from ipt_core.fhir.bulk import bulk_load
from ipt_core.fhir.search import page_statement, parse_search, revinclude_statement, sort_plan
from ipt_core.ipt import codes
from tests.support.plans import generic_plan

COURSES = 200
BIG_TABLES = ("resource", "resource_version", "search_token", "search_reference", "search_date")


@pytest.fixture
async def seeded(db: AsyncEngine) -> AsyncEngine:
    async with db.begin() as conn:
        resources = (r for course in range(COURSES) for r in course_resources(course))
        await bulk_load(conn, resources, now=datetime.now(UTC), validate=False)
    async with db.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))
    return db


def statements(patient: str) -> dict[str, Select[tuple[object, ...]]]:
    loinc = f"{codes.LOINC}|{codes.PHQ9_TOTAL}"
    encounters = parse_search("Encounter", [("patient", patient), ("_sort", "-date")])
    phq = parse_search("Observation", [("patient", patient), ("code", loinc)])
    rev = parse_search("Patient", [("_id", patient), ("_revinclude", "Encounter:subject")])
    return {
        "encounters": page_statement(encounters, sort_plan(encounters), None),
        "phq9": page_statement(phq, sort_plan(phq), None),
        "patient": page_statement(rev, sort_plan(rev), None),
        "revinclude": revinclude_statement(rev.revincludes[0], "Patient", [patient]),
    }


async def test_benchmark_searches_use_indexes(seeded: AsyncEngine) -> None:
    patient = ident("patient", COURSES // 2)
    async with seeded.connect() as conn:
        for name, statement in statements(patient).items():
            sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {sql}")))
            scanned = [t for t in BIG_TABLES if f"Seq Scan on {t} " in plan + " "]
            assert not scanned, f"{name} scans {scanned} sequentially:\n{plan}"
            assert "Index" in plan, plan


async def test_the_phq9_search_starts_from_the_patient_even_when_generic(
    seeded: AsyncEngine,
) -> None:
    # Its statement is prepared and reused (a clause names a Patient): the generic plan must
    # not drive from the PHQ-9 code every Observation here shares (docs/architecture.md,
    # "Search plans fit the values").
    async with seeded.connect() as conn:
        plan = await generic_plan(conn, statements(ident("patient", 1))["phq9"])
    assert "CTE patient_rows" in plan, plan
    assert "ix_search_token_resource_type_param_code_system" not in plan, plan
