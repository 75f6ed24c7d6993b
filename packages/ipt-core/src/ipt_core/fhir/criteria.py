"""Matching of conditional-interaction criteria (`identifier=s|v`, `_id=x`, dates, chains …).

Conditional create, update, delete and patch name their target by search criteria. They are
evaluated by the search engine with strict handling: an unknown parameter is a 400 here, as
silently ignoring it could update the wrong resource.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.registry import ResourceDefinition
from ipt_core.fhir.search import DEFAULT_SEARCH_LIMITS, SearchLimits, parse_search
from ipt_core.fhir.search import matching_ids as search_ids

__all__ = ["matching_ids", "normalize_criteria"]

_MAX_MATCHES = 2  # a conditional interaction only needs to know: none, one or several


def normalize_criteria(query: str) -> tuple[tuple[str, str], ...]:
    """Parse a criteria query string into sorted `(name, value)` pairs.

    Raises:
        InvalidRequest: when the criteria are empty.
    """
    pairs = tuple(sorted(parse_qsl(query.lstrip("?"), keep_blank_values=True)))
    if not pairs:
        raise InvalidRequest("Conditional interactions need search criteria")
    return pairs


async def matching_ids(
    conn: AsyncConnection,
    definition: ResourceDefinition,
    criteria: tuple[tuple[str, str], ...],
    limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
) -> list[str]:
    """Return the ids (at most two) of current resources matching every criterion."""
    query = parse_search(definition.type, criteria, strict=True, limits=limits)
    if not query.clauses:
        raise InvalidRequest("Conditional interactions need search criteria")
    return await search_ids(conn, query, _MAX_MATCHES)
