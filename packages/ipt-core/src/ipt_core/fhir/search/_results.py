"""Parsing of the result parameters: `_count _sort _summary _elements _total _include …`."""

from __future__ import annotations

from dataclasses import replace
from typing import cast, get_args

from ipt_core.fhir.errors import InvalidRequest
from ipt_core.fhir.registry import COMMON_PARAMS, REGISTRY, SearchParam
from ipt_core.fhir.search._model import Include, SearchQuery, SortKey, Summary

__all__ = ["DEFAULT_COUNT", "MAX_COUNT", "parse_result_param"]

DEFAULT_COUNT = 50
MAX_COUNT = 1000
_SUMMARIES = frozenset(get_args(Summary))
_TOTALS = {"none": False, "estimate": True, "accurate": True}


def parse_result_param(query: SearchQuery, name: str, value: str) -> SearchQuery:
    """Return `query` with the result parameter `name=value` applied.

    Raises:
        InvalidRequest: when the value is not one the parameter accepts.
    """
    base, _, modifier = name.partition(":")
    if base == "_count":
        return replace(query, count=_count(value))
    if base == "_sort":
        return replace(query, sort=_sort(query.resource_type, value))
    if base == "_summary":
        if value not in _SUMMARIES:
            raise InvalidRequest(f"_summary={value!r} is not supported", expression=(name,))
        return replace(query, summary=cast(Summary, value))
    if base == "_elements":
        elements = tuple(e.strip() for e in value.split(",") if e.strip())
        return replace(query, elements=(*query.elements, *elements))
    if base == "_total":
        if value not in _TOTALS:
            raise InvalidRequest(f"_total={value!r} is not supported", expression=(name,))
        return replace(query, total=_TOTALS[value])
    if base in {"_include", "_revinclude"}:
        return _with_include(query, base, modifier, value)
    return query  # _contained: contained resources are never returned on their own


def _count(value: str) -> int:
    if not value.isdigit():
        raise InvalidRequest(
            f"_count must be a whole number, not {value!r}", expression=("_count",)
        )
    return min(int(value), MAX_COUNT)


def _sort(resource_type: str, value: str) -> tuple[SortKey, ...]:
    keys = []
    for item in value.split(","):
        name = item.strip()
        descending = name.startswith("-")
        name = name.lstrip("-")
        definition = REGISTRY[resource_type]
        param = definition.params.get(name) or COMMON_PARAMS.get(name)
        if param is None:
            raise InvalidRequest(
                f"Cannot sort {resource_type} by unknown parameter {name!r}", expression=("_sort",)
            )
        keys.append(SortKey(param, descending))
    return tuple(keys)


def _with_include(query: SearchQuery, base: str, modifier: str, value: str) -> SearchQuery:
    if modifier not in {"", "iterate", "recurse"}:
        raise InvalidRequest(f"{base}:{modifier} is not supported", expression=(base,))
    iterate = modifier != ""
    found = tuple(_includes(query.resource_type, base, value, iterate))
    if base == "_include":
        return replace(query, includes=(*query.includes, *found))
    reverse = tuple(replace(spec, reverse=True) for spec in found)
    return replace(query, revincludes=(*query.revincludes, *reverse))


def _includes(resource_type: str, base: str, value: str, iterate: bool) -> list[Include]:
    if value == "*" and base == "_include":
        definition = REGISTRY[resource_type]
        return [
            Include(resource_type, p, None, iterate)
            for p in definition.params.values()
            if p.type == "reference"
        ]
    source, _, rest = value.partition(":")
    param_name, _, target = rest.partition(":")
    source_definition = REGISTRY.get(source)
    param = source_definition.params.get(param_name) if source_definition else None
    if param is None or param.type != "reference":
        raise InvalidRequest(f"{base}={value!r}: no such reference parameter", expression=(base,))
    if target and (target not in REGISTRY or (param.targets and target not in param.targets)):
        raise InvalidRequest(f"{base}={value!r}: {target!r} is not a target", expression=(base,))
    if not iterate:
        ours = source == resource_type if base == "_include" else _may_target(param, resource_type)
        if not ours:
            raise InvalidRequest(
                f"{base}={value!r} does not apply to a search of {resource_type}",
                expression=(base,),
            )
    return [Include(source, param, target or None, iterate)]


def _may_target(param: SearchParam, resource_type: str) -> bool:
    return not param.targets or resource_type in param.targets
