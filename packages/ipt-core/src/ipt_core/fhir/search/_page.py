"""One page of search results by keyset, stable while other clients write.

A page is "the next `count` matches after position P in the search's order". Positions are
sort-key tuples ending with the id, so creates and deletes never shift a page. Writes that
*move* a resource in the order (an update changes `_lastUpdated`, maybe a date) are handled
by a snapshot: the first page records the newest version sequence number S, and later pages
place every resource where its version as of S put it. Resources unchanged since S are
paged in SQL from the index; the few changed since S ("movers") are placed from their
version as of S in Python, then merged by PostgreSQL itself (so text ordering is the
database's collation, never Python's). Thus a resource that matched when paging started and
still matches is returned exactly once, whatever is written meanwhile.

Not covered: a transaction that had taken its sequence number but not committed when the
first page was read (milliseconds) is treated as older than S.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Integer, Select, and_, column, func, select, values
from sqlalchemy.dialects.postgresql import distinct_on

from ipt_core.db.schema import resource, resource_version
from ipt_core.fhir.errors import ResourceGone
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.search._conditions import (
    Subject,
    clause_condition,
    patient_clause,
    patients_condition,
)
from ipt_core.fhir.search._model import SearchQuery
from ipt_core.fhir.search._sort import SortPlan
from ipt_core.fhir.search._statements import SearchRunner

__all__ = [
    "PageRows",
    "Position",
    "count_matches",
    "count_statement",
    "matching",
    "page_rows",
    "page_statement",
]

# Resources changed since the snapshot that a later page may place; beyond this the search
# has changed too much to page consistently and must be started again.
_MAX_MOVERS = 10_000


@dataclass(frozen=True)
class Position:
    """A page boundary: after `key` (before it when `backward`), as of version `snapshot`."""

    snapshot: int
    key: tuple[Any, ...]
    backward: bool = False


@dataclass(frozen=True)
class PageRows:
    """The matches of a page in the query's direction, one more than asked when there are."""

    rows: list[tuple[StoredResource, tuple[Any, ...]]]
    snapshot: int


def matching(query: SearchQuery) -> list[ColumnElement[bool]]:
    """The WHERE conditions of `query` over the `resource` table."""
    r = resource
    subject = Subject(query.resource_type, r.c.id, r.c.last_updated)
    patients = patient_clause(query.clauses)
    return [
        r.c.resource_type == query.resource_type,
        r.c.deleted.is_(False),
        *(
            patients_condition(clause, subject)
            if clause is patients
            else clause_condition(clause, subject)
            for clause in query.clauses
        ),
    ]


def count_statement(query: SearchQuery) -> Select[Any]:
    """The SQL counting the current resources that match `query`."""
    return select(func.count()).select_from(resource).where(*matching(query))


async def count_matches(runner: SearchRunner, query: SearchQuery) -> int:
    """Return how many current resources match `query`."""
    return int((await runner.rows("count", query, count_statement))[0][0])


def page_statement(query: SearchQuery, plan: SortPlan, position: Position | None) -> Select[Any]:
    """The SQL of a page (the snapshot-stable part, for resources unchanged since S)."""
    r = resource
    joined, columns = plan.columns(r)
    reverse = position is not None and position.backward
    where = matching(query)
    snapshot: ColumnElement[Any]
    if position is None:
        snapshot = select(func.max(resource_version.c.seq)).scalar_subquery()
    else:
        v = resource_version
        joined = joined.join(
            v,
            and_(
                v.c.resource_type == r.c.resource_type,
                v.c.id == r.c.id,
                v.c.version_id == r.c.version_id,
            ),
        )
        snapshot = v.c.seq
        where += [v.c.seq <= position.snapshot, plan.after(columns, position.key, reverse=reverse)]
    return (
        select(
            r.c.id,
            r.c.version_id,
            r.c.last_updated,
            r.c.content,
            snapshot.label("snapshot"),
            *(c.label(f"k{i}") for i, c in enumerate(columns)),
        )
        .select_from(joined)
        .where(*where)
        .order_by(*plan.order_by(columns, reverse=reverse))
        .limit(query.count + 1)
    )


async def page_rows(
    runner: SearchRunner, query: SearchQuery, plan: SortPlan, position: Position | None
) -> PageRows:
    """Fetch the page after `position` (or the first page), one extra row to see if more."""
    if position is None:
        found = await runner.rows("page", query, lambda q: page_statement(q, plan, None))
    else:  # not a shape of its own: the key values are bound, compiled per page
        found = await runner.rows(None, query, lambda q: page_statement(q, plan, position))
    end = 5 + len(plan.components)
    resource_type = query.resource_type
    rows = [
        (
            StoredResource(resource_type, row[0], row[1], row[2], deleted=False, content=row[3]),
            tuple(row[5:end]),
        )
        for row in found
    ]
    if position is None:
        return PageRows(rows, int(found[0][4] or 0) if found else 0)
    movers = await _movers(runner, query, position.snapshot)
    if movers:
        rows = await _merged(runner, query, plan, position, rows, movers)
    return PageRows(rows, position.snapshot)


async def _movers(runner: SearchRunner, query: SearchQuery, snapshot: int) -> list[StoredResource]:
    # Read after the page query: a resource changing in between is in both, and deduplicated.
    r, v = resource, resource_version
    statement = (
        select(r.c.id, r.c.version_id, r.c.last_updated, r.c.content)
        .join(
            v,
            and_(
                v.c.resource_type == r.c.resource_type,
                v.c.id == r.c.id,
                v.c.version_id == r.c.version_id,
            ),
        )
        .where(*matching(query), v.c.seq > snapshot)
        .limit(_MAX_MOVERS + 1)
    )
    movers = [_stored(query.resource_type, row) for row in await runner.fetch(statement)]
    if len(movers) > _MAX_MOVERS:
        raise ResourceGone("The results changed too much since the first page; search again")
    return movers


async def _merged(
    runner: SearchRunner,
    query: SearchQuery,
    plan: SortPlan,
    position: Position,
    rows: list[tuple[StoredResource, tuple[Any, ...]]],
    movers: list[StoredResource],
) -> list[tuple[StoredResource, tuple[Any, ...]]]:
    placed = {stored.id: (stored, key) for stored, key in rows}
    earlier = await _versions_at(runner, query.resource_type, [m.id for m in movers], position)
    for mover in movers:
        if mover.id in placed:
            continue
        then = earlier.get(mover.id, mover)
        content = orjson.loads(then.content or mover.content or "{}")
        placed[mover.id] = (mover, plan.key_of(mover.id, then.last_updated, content))
    candidates = list(placed.values())
    return [candidates[i] for i in await _ordered(runner, plan, position, candidates)]


async def _versions_at(
    runner: SearchRunner, resource_type: str, ids: Sequence[str], position: Position
) -> dict[str, StoredResource]:
    v = resource_version
    statement = (
        select(v.c.id, v.c.version_id, v.c.last_updated, v.c.content, v.c.method)
        .ext(distinct_on(v.c.id))
        .where(
            v.c.resource_type == resource_type,
            v.c.id.in_(ids),
            v.c.seq <= position.snapshot,
        )
        .order_by(v.c.id, v.c.seq.desc())
    )
    # A resource deleted (or not yet created) at the snapshot is placed as it is now.
    return {
        row[0]: _stored(resource_type, row)
        for row in await runner.fetch(statement)
        if row[4] != "DELETE"
    }


async def _ordered(
    runner: SearchRunner,
    plan: SortPlan,
    position: Position,
    candidates: list[tuple[StoredResource, tuple[Any, ...]]],
) -> list[int]:
    # PostgreSQL orders the merged candidates, so text compares in the database's collation.
    parts = plan.components
    table = values(
        column("i", Integer),
        *(column(f"k{n}", part.type) for n, part in enumerate(parts)),
        name="candidates",
    ).data([(i, *key) for i, (_, key) in enumerate(candidates)])
    columns: list[ColumnElement[Any]] = [table.c[f"k{n}"] for n in range(len(parts))]
    reverse = position.backward
    statement = (
        select(table.c.i)
        .where(plan.after(columns, position.key, reverse=reverse))
        .order_by(*plan.order_by(columns, reverse=reverse))
    )
    return [row[0] for row in await runner.fetch(statement)]


def _stored(resource_type: str, row: Any) -> StoredResource:
    # Positional: a driver's record or a Core row (`SearchRunner.fetch`) of id, version_id,
    # last_updated, content.
    return StoredResource(resource_type, row[0], row[1], row[2], deleted=False, content=row[3])
