"""Statements built once at import and compiled once: each execution only binds values.

The write path's statements (the store's write, the outbox's numbered append, the audit
insert) never change; only their values do. Run through Core, every execution still
computes the statement's cache key (a walk of the whole statement), looks its compiled form
up, builds the parameters and passes each array through its bind processor: with three
statements per create that was about a sixth of a create's CPU (bench/PROFILE.md, "Fourth
round"). `FixedStatement` compiles once for asyncpg and runs the SQL text with
`exec_driver_sql`: the same connection, transaction, prepared-statement cache and error
translation as Core, without the per-call compilation work. On a connection whose
transaction SQLAlchemy does not manage (autocommit, or `driver_transaction`: every API write)
it runs on the driver itself, without SQLAlchemy's execution layer and greenlet bridge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ClauseElement

from ipt_core.db.driver import autocommit_driver, driver_statement

__all__ = ["FixedStatement"]

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
_GIVEN = object()  # marks a parameter the caller passes (not a constant of the statement)


class FixedStatement:
    """A Core statement compiled once; run it with the same named parameters as Core's."""

    __slots__ = ("_parts", "_processors", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        """Compile `statement` (its constants, such as literal numbers, are kept as bound)."""
        compiled: Any = statement.compile(dialect=_DIALECT)
        self.sql: str = str(compiled)
        # Per `$n`: the caller's parameter name, or the constant Core bound there.
        self._parts: list[tuple[str, Any]] = []
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            given = bind.required  # a `bindparam` without a value: the caller's
            self._parts.append((name, _GIVEN if given else compiled.params[name]))
            process = compiled._bind_processors.get(name)
            if process is not None and given and _converts(bind.type):
                self._processors[name] = process

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for `params`, converted as Core converts them."""
        processors = self._processors
        values = []
        for name, constant in self._parts:
            if constant is not _GIVEN:
                values.append(constant)
                continue
            value = params[name]
            process = processors.get(name)
            values.append(process(value) if process is not None and value is not None else value)
        return tuple(values)

    async def execute(
        self, conn: AsyncConnection, params: Mapping[str, Any]
    ) -> Sequence[Mapping[Any, Any]]:
        """Run the statement on `conn` (in its transaction) with `params`, named as in Core;
        return its rows, each a mapping of column name to value."""
        driver = await autocommit_driver(conn)
        if driver is not None:
            return await self.fetch(driver, params)
        result = await conn.exec_driver_sql(self.sql, self.arguments(params))
        if not result.returns_rows:
            return []
        return result.mappings().all()

    async def fetch(self, driver: Any, params: Mapping[str, Any]) -> Sequence[Mapping[Any, Any]]:
        """Run the statement on an asyncpg connection in autocommit or in its own transaction
        (`ipt_core.db.read_pool`, `ipt_core.db.driver.driver_transaction`); return its records."""
        async with driver_statement(driver):
            rows = await driver.fetch(self.sql, *self.arguments(params))
        return rows  # type: ignore[no-any-return]


def _converts(type_: Any) -> bool:
    """Whether Core's bind processor of `type_` changes values asyncpg would take as given.

    An array's processor copies any sequence to a list and applies its element type's
    processor, if there is one; asyncpg takes lists as they are, so only arrays of converted
    elements (and converted scalars) need Core's processor.
    """
    if isinstance(type_, ARRAY):
        return type_.item_type.dialect_impl(_DIALECT).bind_processor(_DIALECT) is not None
    return True
