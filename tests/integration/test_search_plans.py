"""Searches are planned for their values on autocommit reads as in transactions.

`SET LOCAL plan_cache_mode` does nothing outside a transaction block, where the API's reads
run; there a search must not reuse a prepared statement (whose generic plan ignores the
values) unless its only clause names one Patient. A second clause beside the Patient is
enough for the generic plan to drive from the wrong index (docs/architecture.md, "Search plans
fit the values"). Checked in PostgreSQL's own view of the connection's prepared statements.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ipt_core.fhir.search import parse_search, run_search

_BY_CODE = [("code", "http://loinc.org|44261-6"), ("_count", "5")]
_PATIENT_AND_CODE = [("patient", "Patient/p1"), ("code", "http://loinc.org|44261-6")]
_BY_PATIENT = [("patient", "Patient/p1")]


async def _prepared(conn: AsyncConnection) -> list[str]:
    """The connection's prepared searches (a pooled connection may hold others' statements)."""
    rows = await conn.execute(text("SELECT statement FROM pg_prepared_statements"))
    return [row[0] for row in rows if "EXISTS (SELECT" in row[0] and "search_" in row[0]]


async def test_autocommit_search_by_value_is_planned_for_its_values(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(8):  # more than the five custom plans before a generic one
            page = await run_search(conn, parse_search("Observation", _BY_CODE))
            assert page.total == 0
            page = await run_search(conn, parse_search("Observation", _PATIENT_AND_CODE))
            assert page.total == 0
        assert await _prepared(conn) == []  # unnamed statements only: planned at each bind
        await run_search(conn, parse_search("Observation", _BY_PATIENT))
        assert len(await _prepared(conn)) == 1  # one patient, nothing else: prepared, reused


async def test_search_in_a_transaction_sets_custom_plans(db: AsyncEngine) -> None:
    async with db.begin() as conn:
        await run_search(conn, parse_search("Observation", _BY_CODE))
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
        assert mode == "force_custom_plan"
    async with db.connect() as conn:  # LOCAL: over with the transaction
        mode = (await conn.execute(text("SHOW plan_cache_mode"))).scalar_one()
        assert mode == "auto"
