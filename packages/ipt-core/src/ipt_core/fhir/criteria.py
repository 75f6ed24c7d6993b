"""Matching of conditional-interaction criteria (`identifier=s|v`, `_id=x`, …).

Conditional create, update and delete name their target by search criteria. This module
resolves such criteria with exact, indexed lookups; full search (modifiers, prefixes,
chaining, paging) lives in the search package and is not needed here.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from sqlalchemy import ColumnElement, Select, and_, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ipt_core.db.schema import resource, search_reference, search_string, search_token
from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.index import normalize_string
from ipt_core.fhir.references import parse_reference
from ipt_core.fhir.registry import ResourceDefinition

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
    conn: AsyncConnection, definition: ResourceDefinition, criteria: tuple[tuple[str, str], ...]
) -> list[str]:
    """Return the ids (at most two) of current resources matching every criterion."""
    query: Select[tuple[str]] = select(resource.c.id).where(
        resource.c.resource_type == definition.type, resource.c.deleted.is_(False)
    )
    for name, value in criteria:
        query = query.where(_condition(definition, name, value))
    rows = await conn.execute(query.limit(_MAX_MATCHES))
    return [row.id for row in rows]


def _condition(definition: ResourceDefinition, name: str, value: str) -> ColumnElement[bool]:
    if name == "_id":
        return resource.c.id.in_(value.split(","))
    param = definition.params.get(name)
    if param is None:
        raise InvalidRequest(
            f"Unknown search parameter {name!r} for {definition.type}", expression=(name,)
        )
    if param.type == "token":
        return _token(definition.type, name, value)
    if param.type == "reference":
        return _reference(definition.type, name, value)
    if param.type == "string":
        return _string(definition.type, name, value)
    raise InvalidRequest(
        f"Parameter {name!r} ({param.type}) cannot be used in conditional criteria",
        expression=(name,),
    )


def _token(resource_type: str, name: str, value: str) -> ColumnElement[bool]:
    t = search_token
    conditions = [
        t.c.resource_type == resource_type,
        t.c.resource_id == resource.c.id,
        t.c.param == name,
    ]
    if "|" in value:
        system, code = value.split("|", 1)
        conditions.append(t.c.system.is_(None) if system == "" else t.c.system == system)
        if code:
            conditions.append(t.c.code == code)
    else:
        conditions.append(t.c.code == value)
    return exists().where(and_(*conditions))


def _reference(resource_type: str, name: str, value: str) -> ColumnElement[bool]:
    r = search_reference
    target = parse_reference(value)
    if target is None:
        raise InvalidRequest(f"{value!r} is not a reference", expression=(name,))
    conditions = [
        r.c.resource_type == resource_type,
        r.c.resource_id == resource.c.id,
        r.c.param == name,
        r.c.target_id == target.id,
    ]
    if target.type is not None:
        conditions.append(r.c.target_type == target.type)
    return exists().where(and_(*conditions))


def _string(resource_type: str, name: str, value: str) -> ColumnElement[bool]:
    s = search_string
    return exists().where(
        and_(
            s.c.resource_type == resource_type,
            s.c.resource_id == resource.c.id,
            s.c.param == name,
            s.c.value.startswith(normalize_string(value), autoescape=True),
        )
    )
