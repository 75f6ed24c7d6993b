"""Searches are planned for their values on autocommit reads as in transactions.

`SET LOCAL plan_cache_mode` does nothing outside a transaction block, where the API's reads
run; there a search must not reuse a prepared statement (whose generic plan ignores the
values) unless a clause names Patients (the search then starts from the Patients' rows, a
materialized CTE, whatever the plan; docs/architecture.md, "Search plans fit the values").
Checked in PostgreSQL's own view of the connection's prepared statements.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.db.engine import create_engine
from ipt_core.fhir.search import parse_search, run_search, search_runner

_BY_CODE = [("code", "http://loinc.org|44261-6"), ("_count", "5")]
_PATIENT_AND_CODE = [("patient", "Patient/p1"), ("code", "http://loinc.org|44261-6")]
_BY_PATIENT = [("patient", "Patient/p1")]


async def _prepared(conn: AsyncConnection) -> list[str]:
    """The connection's prepared searches (a pooled connection may hold others' statements)."""
    rows = await conn.execute(text("SELECT statement FROM pg_prepared_statements"))
    return [sql for (sql,) in rows if "resource.deleted IS false" in sql and "search_" in sql]


async def test_autocommit_search_by_value_is_planned_for_its_values(db: AsyncEngine) -> None:
    # A connection of its own: the shared pool's connections hold other tests' statements.
    engine = create_engine(db.url.render_as_string(hide_password=False), pool_size=1)
    try:
        await _planned_for_values(engine)
    finally:
        await engine.dispose()


async def _planned_for_values(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        before = set(await _prepared(conn))  # the driver's own set-up statements, if any
        runner = await search_runner(conn)
        for _ in range(8):  # more than the five custom plans before a generic one
            page = await run_search(runner, parse_search("Observation", _BY_CODE))
            assert page.total == 0
        assert set(await _prepared(conn)) == before  # unnamed statements: planned at each bind
        await run_search(runner, parse_search("Observation", _PATIENT_AND_CODE))
        await run_search(runner, parse_search("Observation", _BY_PATIENT))
        prepared = set(await _prepared(conn)) - before
        assert len(prepared) == 2  # bounded by a patient: prepared, reused
        assert all("patient_rows AS MATERIALIZED" in sql for sql in prepared), prepared


async def test_search_in_a_transaction_sets_custom_plans(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await run_search(await search_runner(conn), parse_search("Observation", _BY_CODE))
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
        assert mode == "force_custom_plan"
    async with db.connect() as conn:  # LOCAL: over with the transaction
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
        assert mode == "auto"
