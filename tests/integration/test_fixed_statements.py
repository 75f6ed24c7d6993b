"""A statement compiled once (`db/fixed.py`) answers as Core would, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Boolean, Integer, Text, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ipt_core.db.fixed import FixedStatement
from ipt_core.db.unnest import INSTANT, unnest_params

_rows = unnest_params("r", label=Text, flag=Boolean, at=INSTANT, n=Integer)
# A constant of the statement (the literal 7) among the caller's parameters, which are arrays
# of texts, booleans (Core has a bind processor for those), instants and integers.
_STATEMENT = select(_rows.c.label, _rows.c.flag, _rows.c.at, _rows.c.n + literal(7)).order_by(
    _rows.c.n
)
_PARAMS = {
    "each_label": ["b", "a", None],
    "each_flag": [True, False, None],
    "each_at": [datetime(2026, 12, 4, 17, 0, tzinfo=UTC)] * 3,
    "each_n": [2, 1, 3],
}


async def test_a_fixed_statement_returns_what_core_returns(db: AsyncEngine) -> None:
    fixed = FixedStatement(_STATEMENT)
    async with db.connect() as conn:
        core = [tuple(row) for row in await conn.execute(_STATEMENT, _PARAMS)]
        ours = [tuple(row.values()) for row in await fixed.execute(conn, _PARAMS)]
    assert ours == core
    assert [row[0] for row in ours] == ["a", "b", None]
    assert [row[3] for row in ours] == [8, 9, 10]


async def test_a_fixed_statement_runs_in_the_callers_transaction(db: AsyncEngine) -> None:
    fixed = FixedStatement(select(func.txid_current_if_assigned(), func.now()))
    async with db.begin() as conn:
        started = await conn.scalar(select(func.now()))
        (row,) = await fixed.execute(conn, {})
    # now() is the transaction's start: the same transaction
    assert list(row.values())[1] == started


async def test_a_missing_parameter_is_named(db: AsyncEngine) -> None:
    fixed = FixedStatement(_STATEMENT)
    async with db.connect() as conn:
        with pytest.raises(KeyError, match="each_flag"):
            await fixed.execute(conn, {k: v for k, v in _PARAMS.items() if k != "each_flag"})


async def test_a_statement_without_rows_returns_no_rows_in_either_kind_of_transaction(
    db: AsyncEngine,
) -> None:
    fixed = FixedStatement(text("SET LOCAL statement_timeout = 1000"))
    async with db.begin() as conn:  # SQLAlchemy's transaction: through Core
        assert await fixed.execute(conn, {}) == []
    async with db.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        assert await fixed.execute(conn, {}) == []  # on the driver
