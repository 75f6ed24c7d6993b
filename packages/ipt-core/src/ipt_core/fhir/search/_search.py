"""Running a parsed search: the page of matches, its neighbours, the total, the includes."""

from __future__ import annotations

from dataclasses import dataclass

from ipt_core.fhir.errors import Issue
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.search._include import included_resources
from ipt_core.fhir.search._model import SearchQuery
from ipt_core.fhir.search._page import Position, count_matches, page_rows
from ipt_core.fhir.search._sort import sort_plan
from ipt_core.fhir.search._statements import SearchRunner

__all__ = ["SearchPage", "run_search"]


@dataclass(frozen=True)
class SearchPage:
    """A page of results: matches in order, included resources, and the neighbour pages."""

    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None
    next: Position | None
    previous: Position | None
    issues: tuple[Issue, ...]


async def run_search(
    runner: SearchRunner, query: SearchQuery, position: Position | None = None
) -> SearchPage:
    """Return the page of `query` at `position` (the first page when None).

    `runner` runs its statements: `search_runner(conn)` on a Core connection, or
    `SearchRunner.on_driver` on a driver connection of the pool.
    """
    if query.counts_only:
        return SearchPage([], [], await count_matches(runner, query), None, None, query.issues)
    plan = sort_plan(query)
    found = await page_rows(runner, query, plan, position)
    rows = found.rows[: query.count]
    more = len(found.rows) > query.count
    total = None
    if query.total:
        # A first page that holds every match is its own count: no COUNT statement.
        complete = position is None and not more
        total = len(rows) if complete else await count_matches(runner, query)
    backward = position is not None and position.backward
    if backward:
        rows.reverse()
    matches = [stored for stored, _ in rows]
    first = Position(found.snapshot, rows[0][1], backward=True) if rows else None
    last = Position(found.snapshot, rows[-1][1]) if rows else None
    if backward:
        previous, following = (first if more else None), last
    else:
        previous, following = (first if position is not None else None), (last if more else None)
    included, include_issues = await included_resources(runner, query, matches)
    return SearchPage(
        matches, included, total, following, previous, (*query.issues, *include_issues)
    )
