"""`_include` and `_revinclude`: resources a page's matches refer to, or that refer to them.

Both follow the search_reference index: forward by the matches' ids, backward by the
targets' ids, so each costs one indexed query per include parameter. `:iterate` is applied
once more to what the first round included (one level, as documented).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, and_, select

from ipt_core.db.schema import resource, search_reference
from ipt_core.fhir.errors import Issue
from ipt_core.fhir.model import StoredResource
from ipt_core.fhir.search._model import Include, SearchQuery
from ipt_core.fhir.search._statements import SearchRunner

__all__ = ["MAX_INCLUDED", "included_resources", "revinclude_statement"]

MAX_INCLUDED = 1000  # per page; more is cut off with a warning

Key = tuple[str, str]


async def included_resources(
    runner: SearchRunner, query: SearchQuery, matches: Sequence[StoredResource]
) -> tuple[list[StoredResource], list[Issue]]:
    """Return the resources `query`'s includes add to `matches`, without duplicates."""
    specs = (*query.includes, *query.revincludes)
    if not specs or not matches:
        return [], []
    seen: set[Key] = {(m.resource_type, m.id) for m in matches}
    found = await _round(runner, specs, list(matches), seen)
    iterating = tuple(s for s in specs if s.iterate)
    if iterating and found:
        found += await _round(runner, iterating, found, seen)
    if len(found) > MAX_INCLUDED:
        warning = Issue(
            "too-costly",
            f"Only the first {MAX_INCLUDED} included resources are returned",
            severity="warning",
        )
        return found[:MAX_INCLUDED], [warning]
    return found, []


async def _round(
    runner: SearchRunner,
    specs: Iterable[Include],
    pool: list[StoredResource],
    seen: set[Key],
) -> list[StoredResource]:
    found: list[StoredResource] = []
    for spec in specs:
        follow = _referrers if spec.reverse else _targets
        candidates = await follow(runner, spec, pool)
        for stored in candidates:
            if (stored.resource_type, stored.id) not in seen:
                seen.add((stored.resource_type, stored.id))
                found.append(stored)
    return found


async def _targets(
    runner: SearchRunner, spec: Include, pool: list[StoredResource]
) -> list[StoredResource]:
    ids = [m.id for m in pool if m.resource_type == spec.source_type]
    if not ids:
        return []
    ref = search_reference
    query = select(ref.c.target_type, ref.c.target_id).where(
        ref.c.resource_type == spec.source_type,
        ref.c.resource_id.in_(ids),
        ref.c.param == spec.param.name,
        ref.c.target_type.is_not(None),
    )
    if spec.target_type is not None:
        query = query.where(ref.c.target_type == spec.target_type)
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in await runner.fetch(query.distinct()):
        wanted[row[0]].add(row[1])
    found: list[StoredResource] = []
    for resource_type, target_ids in wanted.items():
        found += await _current(runner, resource_type, sorted(target_ids))
    return found


async def _referrers(
    runner: SearchRunner, spec: Include, pool: list[StoredResource]
) -> list[StoredResource]:
    found: list[StoredResource] = []
    by_type: dict[str, list[str]] = defaultdict(list)
    for m in pool:
        may_refer = not spec.param.targets or m.resource_type in spec.param.targets
        if may_refer and spec.target_type in {None, m.resource_type}:
            by_type[m.resource_type].append(m.id)
    for target_type, ids in by_type.items():
        rows = await runner.fetch(revinclude_statement(spec, target_type, ids))
        found += [_stored(row) for row in rows]
    return found


def revinclude_statement(spec: Include, target_type: str, ids: Sequence[str]) -> Select[Any]:
    """The SQL of one `_revinclude` for targets `target_type/ids`."""
    r, ref = resource, search_reference
    return (
        select(r.c.resource_type, r.c.id, r.c.version_id, r.c.last_updated, r.c.content)
        .join(ref, and_(ref.c.resource_type == r.c.resource_type, ref.c.resource_id == r.c.id))
        .where(
            ref.c.resource_type == spec.source_type,
            ref.c.param == spec.param.name,
            ref.c.target_type == target_type,
            ref.c.target_id.in_(ids),
            r.c.deleted.is_(False),
        )
        .order_by(r.c.id)  # a resource referring twice appears twice; callers deduplicate
    )


async def _current(
    runner: SearchRunner, resource_type: str, ids: Sequence[str]
) -> list[StoredResource]:
    r = resource
    rows = await runner.fetch(
        select(r.c.resource_type, r.c.id, r.c.version_id, r.c.last_updated, r.c.content)
        .where(r.c.resource_type == resource_type, r.c.id.in_(ids), r.c.deleted.is_(False))
        .order_by(r.c.id)
    )
    return [_stored(row) for row in rows]


def _stored(row: Any) -> StoredResource:
    # Positional: a driver's record or a Core row (`SearchRunner.fetch`) of resource_type,
    # id, version_id, last_updated, content.
    return StoredResource(row[0], row[1], row[2], row[3], False, row[4])
