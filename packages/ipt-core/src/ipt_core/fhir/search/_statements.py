"""Running a search's statements: SQL compiled once per shape, plans fitted to the values.

Building a search's Core statement and compiling it (or computing its cache key) cost more
CPU than PostgreSQL spent answering it, and SQLAlchemy's execution layer as much again. So
on the API's autocommit reads a search runs on the driver, like the store's primary-key
reads (`ipt_core.fhir._repository`), with its SQL compiled once per *shape*: type,
parameters, modifiers, which parts of each value are present, order and count, but not the
values. The first search of a shape compiles a *probe*, the query with each value replaced
by a numbered marker, which shows which `$n` each value fills; later searches of the shape
only put their values in that order. Shapes whose values the builders transform (strings,
dates, numbers, `_id`, chains, `_has`) are compiled per search.

Plans. Search values are skewed: on the `make bench` data `Encounter?type=<code of 20,000
Encounters>&_count=20` takes 24 ms with a plan made for its value and 315 ms with the
generic plan PostgreSQL adopts after five runs of a prepared statement whose first values
were rare (EXPLAIN ANALYZE). So a search's statements are planned for their values: an
unnamed statement, planned at bind (+0.35 ms of server CPU a statement, measured). Except
when a clause names Patients: the search then reads that clause first, from a materialized
CTE (`_conditions.patients_condition`), so every plan starts from the Patients' rows and the
named prepared statement is reused. Without the CTE a second clause was enough to mislead
the generic plan: for `Observation?patient=…&code=<PHQ-9>` it drove from the code every
PHQ-9 shares, 63.7 ms against 0.4 ms (EXPLAIN ANALYZE on the `make bench` data; the bench's
PHQ-9 search fell from 2,000 to 71 req/s once PostgreSQL switched plans). In a transaction
(POST `_search`, conditional writes) Core runs the statements after a `SET LOCAL` to the
same effect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.driver import autocommit_driver, driver_statement
from ipt_core.fhir.index import token_key
from ipt_core.fhir.search._conditions import patient_clause
from ipt_core.fhir.search._model import ReferenceValue, SearchQuery, TokenValue, ValueClause

__all__ = ["SearchRunner", "search_runner"]

Build = Callable[[SearchQuery], Select[Any]]

# Per value class, the fields that are bound as they are (after the builder's `token_key`):
# those become slots of the shape; every other field is part of the shape.
_SLOTS: dict[type, tuple[tuple[str, Callable[[str], str]], ...]] = {
    TokenValue: (("system", token_key), ("code", token_key)),
    # A reference's type is part of the shape: whether it names a Patient decides the SQL
    # (`_conditions.patient_clause`).
    ReferenceValue: (("id", token_key),),
}
_OTHER = {
    kind: tuple(f.name for f in fields(kind) if f.name not in {name for name, _ in slots})
    for kind, slots in _SLOTS.items()
}
# `_lastUpdated` is on the resource row, built otherwise (its dates are not slots). `_id` is
# there too, its ids bound as given (not as index keys): a search by id is a common batch
# read, and compiling its statement per call cost ~600 µs (bench/PROFILE.md, "Tenth round").
_RESOURCE_PARAMS = frozenset({"_lastUpdated"})
_AS_GIVEN = frozenset({"_id"})
_MARK = "\x00slot"  # no search value holds NUL (PostgreSQL text cannot)
_MAX_SHAPES = 2_000  # a bound on the cache; real clients use a few dozen shapes
_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
_PLAN_PER_VALUES = text("SET LOCAL plan_cache_mode = force_custom_plan")


class _Compiled:
    """A shape's SQL and, per `$n`, the slot it takes or the constant it always is."""

    __slots__ = ("parts", "sql")

    def __init__(self, sql: str, parts: list[tuple[int, Any]]) -> None:
        self.sql = sql
        self.parts = parts  # (slot, None) or (-1, constant)

    def arguments(self, values: list[Any]) -> list[Any]:
        return [values[slot] if slot >= 0 else constant for slot, constant in self.parts]


_shapes: dict[tuple[Any, ...], _Compiled | None] = {}


class SearchRunner:
    """Runs one search's statements: on the driver in autocommit, else through Core.

    Rows are positionally indexable either way (a driver's record or a Core row).
    """

    __slots__ = ("conn", "driver")

    def __init__(self, conn: AsyncConnection | None, driver: Any) -> None:
        self.conn = conn  # the Core connection, in a transaction; None on the driver
        self.driver = driver  # the asyncpg connection in autocommit, else None

    @classmethod
    def on_driver(cls, driver: Any) -> SearchRunner:
        """A runner on an asyncpg connection in autocommit (`db/read_pool.py`)."""
        return cls(None, driver)

    async def rows(self, kind: str | None, query: SearchQuery, build: Build) -> Sequence[Any]:
        """The rows of `build(query)`, planned for `query`'s values.

        `kind` names the statement family `build` makes, whose SQL depends on nothing but
        `query` (a shape is per kind); None when `build` binds more (compiled per call).
        """
        if self.driver is None:
            return await self._core(build(query))
        sql, arguments = _sql(kind, query, build)
        async with driver_statement(self.driver):
            if patient_clause(query.clauses) is not None:
                return list(await self.driver.fetch(sql, *arguments))
            return await self._unnamed(sql, arguments)

    async def fetch(self, statement: Select[Any]) -> Sequence[Any]:
        """The rows of a statement built for this call (later pages' merge, includes)."""
        if self.driver is None:
            return await self._core(statement)
        sql, arguments = _compile_now(statement)
        async with driver_statement(self.driver):
            return await self._unnamed(sql, arguments)

    async def _core(self, statement: Select[Any]) -> Sequence[Any]:
        assert self.conn is not None, "a runner has a driver or a Core connection"
        return list(await self.conn.execute(statement))

    async def _unnamed(self, sql: str, arguments: list[Any]) -> Sequence[Any]:
        statement = await self.driver.prepare(sql, name="")  # unnamed: planned at bind
        return list(await statement.fetch(*arguments))


async def search_runner(conn: AsyncConnection) -> SearchRunner:
    """A runner on `conn`: its driver connection when `conn` is in autocommit.

    Inside a transaction the driver must not be used directly (SQLAlchemy opens the
    transaction at its own first statement), so Core runs the statements, and `SET LOCAL`
    makes PostgreSQL plan each for its values until the transaction ends. (Outside a
    transaction block `SET LOCAL` does nothing, which is why autocommit reads use unnamed
    statements instead.)
    """
    driver = await autocommit_driver(conn)
    if driver is not None:
        return SearchRunner(conn, driver)
    await conn.execute(_PLAN_PER_VALUES)
    return SearchRunner(conn, None)


def _sql(kind: str | None, query: SearchQuery, build: Build) -> tuple[str, list[Any]]:
    shaped = _probe(query) if kind is not None else None
    if shaped is None:
        return _compile_now(build(query))
    key, values = shaped
    key = (kind, *key)
    if key not in _shapes:
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        _shapes[key] = _compile_shape(build(_probe_query(query)), len(values))
    compiled = _shapes[key]
    if compiled is None:  # a shape whose values the builder does not bind as they are
        return _compile_now(build(query))
    return compiled.sql, compiled.arguments(values)


def _probe(query: SearchQuery) -> tuple[tuple[Any, ...], list[Any]] | None:
    """The shape key and the slot values of `query`; None when its shape is not cached.

    The key holds everything the builders read but the slot values: per clause the
    parameter's name and type (all `_conditions` reads of it) and, per value, its class,
    which slots are empty and its other fields as they are.
    """
    values: list[Any] = []
    clauses = []
    for clause in query.clauses:
        if (
            not isinstance(clause, ValueClause)
            or clause.modifier is not None
            or clause.param.name in _RESOURCE_PARAMS
        ):
            return None
        shapes: list[tuple[Any, ...]] = [(clause.param.name, clause.param.type)]
        as_given = clause.param.name in _AS_GIVEN
        for value in clause.values:
            kind = type(value)
            slots = _SLOTS.get(kind)
            if slots is None:
                return None
            empty = []
            for name, bound in slots:
                given = getattr(value, name)
                empty.append(given is None)
                if given is not None:
                    values.append(given if as_given else bound(given))
            shapes.append((kind, *empty, *(getattr(value, name) for name in _OTHER[kind])))
        clauses.append(tuple(shapes))
    return (query.resource_type, tuple(clauses), query.sort, query.count), values


def _probe_query(query: SearchQuery) -> SearchQuery:
    """`query` with each slot value replaced by its marker, `_MARK` and its number."""
    number = 0
    clauses = []
    for clause in query.clauses:
        assert isinstance(clause, ValueClause)
        probes = []
        for value in clause.values:
            changes: dict[str, Any] = {}
            for name, _ in _SLOTS[type(value)]:
                if getattr(value, name) is not None:
                    changes[name] = f"{_MARK}{number}"
                    number += 1
            probes.append(replace(value, **changes))
        clauses.append(replace(clause, values=tuple(probes)))
    return replace(query, clauses=tuple(clauses))


def _compile_shape(statement: Select[Any], slots: int) -> _Compiled | None:
    sql, arguments = _compile_now(statement)
    parts: list[tuple[int, Any]] = []
    seen = set()
    for argument in arguments:
        if isinstance(argument, str) and argument.startswith(_MARK):
            slot = int(argument[len(_MARK) :])
            parts.append((slot, None))
            seen.add(slot)
        elif isinstance(argument, str) and "\x00" in argument:
            return None  # a marker the builder changed: its values are not bound as given
        else:
            parts.append((-1, argument))
    return _Compiled(sql, parts) if len(seen) == slots else None


def _compile_now(statement: Select[Any]) -> tuple[str, list[Any]]:
    compiled: Any = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    processors = compiled._bind_processors  # e.g. Boolean's; the driver gets what Core sends
    arguments = []
    for name in compiled.positiontup or ():
        value = compiled.params[name]
        process = processors.get(name)
        arguments.append(process(value) if process is not None and value is not None else value)
    return str(compiled), arguments
