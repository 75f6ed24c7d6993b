"""FHIR search: parameters from the registry, evaluated in SQL over the search index.

    parse_search(type, params)   -> SearchQuery   (typed: clauses, sort, paging, includes)
    run_search(runner, query, pos) -> SearchPage  (matches, includes, total, next/previous)
    search_runner(conn) / SearchRunner.on_driver    (where a search's statements run)
    position_to_json / position_from_json          (page tokens; tampering is a 400)
    subset_content                                  (_summary / _elements)
    matching_ids(conn, query, limit)                (ids only: conditional interactions)

Semantics and their limits are listed in the package's modules: `_parse` (parameters and
modifiers), `_values` (prefixes, precision), `_conditions` (SQL), `_sort` and `_page`
(keyset paging stable under concurrent writes), `_include`.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import resource
from ipt_core.fhir.search._elements import subset_content
from ipt_core.fhir.search._include import MAX_INCLUDED, revinclude_statement
from ipt_core.fhir.search._model import (
    ChainClause,
    Clause,
    DateValue,
    HasClause,
    Include,
    ReferenceValue,
    SearchQuery,
    SortKey,
    TokenValue,
    ValueClause,
)
from ipt_core.fhir.search._page import Position, matching, page_statement
from ipt_core.fhir.search._parse import (
    DEFAULT_SEARCH_LIMITS,
    IGNORED_PARAMS,
    SearchLimits,
    parse_search,
    search_param,
)
from ipt_core.fhir.search._position import position_from_json, position_to_json
from ipt_core.fhir.search._results import DEFAULT_COUNT, MAX_COUNT
from ipt_core.fhir.search._search import SearchPage, run_search
from ipt_core.fhir.search._sort import SortPlan, sort_plan
from ipt_core.fhir.search._statements import SearchRunner, search_runner
from ipt_core.fhir.search._values import parse_values

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_SEARCH_LIMITS",
    "IGNORED_PARAMS",
    "MAX_COUNT",
    "MAX_INCLUDED",
    "ChainClause",
    "Clause",
    "DateValue",
    "HasClause",
    "Include",
    "Position",
    "ReferenceValue",
    "SearchLimits",
    "SearchPage",
    "SearchQuery",
    "SearchRunner",
    "SortKey",
    "SortPlan",
    "TokenValue",
    "ValueClause",
    "matching",
    "matching_ids",
    "page_statement",
    "parse_search",
    "parse_values",
    "position_from_json",
    "position_to_json",
    "revinclude_statement",
    "run_search",
    "search_param",
    "search_runner",
    "sort_plan",
    "subset_content",
]


async def matching_ids(conn: AsyncConnection, query: SearchQuery, limit: int) -> list[str]:
    """Return up to `limit` ids of current resources matching `query`'s criteria."""
    runner = await search_runner(conn)
    rows = await runner.rows(None, query, lambda q: _ids_statement(q, limit))
    return [row[0] for row in rows]


def _ids_statement(query: SearchQuery, limit: int) -> Select[tuple[str]]:
    return select(resource.c.id).where(*matching(query)).limit(limit)
