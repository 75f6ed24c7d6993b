"""PostgreSQL's generic plan of a parameterised statement, as a prepared statement gets it.

asyncpg reuses prepared statements and PostgreSQL plans one generically after five runs, so
a hot query must be right under its generic plan too. `EXPLAIN (GENERIC_PLAN)` (PostgreSQL
16+) shows that plan without values; it takes the statement as text, through a function
(a `$n` in the text would otherwise be a parameter of the EXPLAIN itself).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["generic_plan"]

_FUNCTION = text(
    "CREATE OR REPLACE FUNCTION pg_temp.generic_plan(query text) RETURNS SETOF text "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (GENERIC_PLAN) ' || query; END $$"
)


async def generic_plan(conn: AsyncConnection, statement: Any) -> str:
    """The generic plan of `statement` (a Core statement) as the driver would prepare it."""
    sql = str(statement.compile(dialect=asyncpg_dialect()))  # type: ignore[no-untyped-call]
    assert "$1" in sql  # parameterised, as the driver prepares it
    await conn.execute(_FUNCTION)
    rows = await conn.execute(text("SELECT pg_temp.generic_plan(:sql)"), {"sql": sql})
    return "\n".join(row[0] for row in rows)
