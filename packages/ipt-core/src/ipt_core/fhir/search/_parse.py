"""Parsing of a search's query parameters into a typed `SearchQuery`.

Unknown parameters are ignored and reported as warnings (or refused when `strict`, i.e.
`Prefer: handling=strict`); vendor parameters that clients send (`_totalMethod`, `_format`)
are ignored silently. An unsupported modifier or a malformed value is always a 400.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import cast

from ipt_core.fhir.errors import InvalidRequest, Issue
from ipt_core.fhir.index import STRING_KEY_CHARS
from ipt_core.fhir.registry import COMMON_PARAMS, REGISTRY, SearchParam
from ipt_core.fhir.search._model import (
    ChainClause,
    Clause,
    HasClause,
    MissingClause,
    ReferenceValue,
    SearchQuery,
    StringValue,
    ValueClause,
)
from ipt_core.fhir.search._results import parse_result_param
from ipt_core.fhir.search._values import parse_values

__all__ = [
    "DEFAULT_SEARCH_LIMITS",
    "IGNORED_PARAMS",
    "SearchLimits",
    "parse_search",
    "search_param",
]

# Parameters some clients always send that change nothing here: formats, pretty-printing,
# total strategies of other servers, cache busters.
IGNORED_PARAMS = frozenset(
    {"_format", "_pretty", "_totalMethod", "_getpagesoffset", "_bundletype", "_", "_timeout"}
)
_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"not", "text", "missing"}),
    "string": frozenset({"exact", "contains", "missing"}),
    "date": frozenset({"missing"}),
    "number": frozenset({"missing"}),
    "quantity": frozenset({"missing"}),
    "reference": frozenset({"missing"}),
    "uri": frozenset({"missing"}),
}


@dataclass(frozen=True)
class SearchLimits:
    """How much one search may ask for: each parameter and each value costs SQL.

    Attributes:
        max_params: parameters (name=value pairs, `_count` and the like included).
        max_values: values over all parameters (`code=a,b,c` counts three).
    """

    max_params: int = 40
    max_values: int = 200


DEFAULT_SEARCH_LIMITS = SearchLimits()
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class _Unknown(Exception):
    """A parameter this server does not know: ignored, or refused under strict handling."""


def search_param(resource_type: str, name: str) -> SearchParam | None:
    """Return the parameter `name` of `resource_type` (including `_id`, `_lastUpdated`)."""
    definition = REGISTRY.get(resource_type)
    if definition is None:
        return None
    return definition.params.get(name) or COMMON_PARAMS.get(name)


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    strict: bool = False,
    limits: SearchLimits = DEFAULT_SEARCH_LIMITS,
) -> SearchQuery:
    """Parse `params` (name, value pairs, repeated names allowed) into a query.

    Raises:
        InvalidRequest: for malformed values, unsupported modifiers, more parameters or
            values than `limits` allow, control characters, and, when `strict`, unknown
            parameters.
    """
    _check_size(params, limits)
    query = SearchQuery(resource_type)
    clauses: list[Clause] = []
    issues: list[Issue] = []
    signature: list[tuple[str, str]] = []
    for name, value in params:
        if name in IGNORED_PARAMS:
            continue
        try:
            if name.startswith("_") and name.split(":")[0] in _RESULT_NAMES:
                query = parse_result_param(query, name, value)
                if name.startswith("_sort"):
                    signature.append((name, value))
                continue
            clauses.append(_clause(resource_type, name, value))
            signature.append((name, value))
        except _Unknown as unknown:
            if strict:
                raise InvalidRequest(str(unknown), expression=(name,)) from None
            issues.append(Issue("not-supported", str(unknown), (name,), severity="warning"))
    return replace(
        query,
        clauses=tuple(clauses),
        issues=(*issues, *query.issues),
        signature=tuple(sorted(signature)),
    )


def _check_size(params: Sequence[tuple[str, str]], limits: SearchLimits) -> None:
    counted = [(name, value) for name, value in params if name not in IGNORED_PARAMS]
    if len(counted) > limits.max_params:
        raise InvalidRequest(
            f"A search may have at most {limits.max_params} parameters; this one has "
            f"{len(counted)}: split it, or use fewer, more selective parameters"
        )
    values = sum(value.count(",") + 1 for _, value in counted)
    if values > limits.max_values:
        raise InvalidRequest(
            f"A search may have at most {limits.max_values} values in all; this one has {values}"
        )
    for name, value in counted:
        if _CONTROL_CHARACTERS.search(name) or _CONTROL_CHARACTERS.search(value):
            raise InvalidRequest("A search parameter holds a control character (U+0000-U+001F)")


_RESULT_NAMES = frozenset(
    {"_count", "_sort", "_summary", "_elements", "_total", "_include", "_revinclude", "_contained"}
)


def _clause(resource_type: str, name: str, value: str) -> Clause:
    if name.startswith("_has:"):
        return _has(resource_type, name, value)
    head, dot, rest = name.partition(".")
    if dot:
        return _chain(resource_type, head, rest, value)
    return _simple(resource_type, name, value)


def _simple(resource_type: str, name: str, value: str) -> Clause:
    base, _, modifier = name.partition(":")
    param = search_param(resource_type, base)
    if param is None:
        raise _Unknown(f"Unknown search parameter {base!r} for {resource_type}: ignored")
    if modifier == "missing":
        if value not in {"true", "false"}:
            raise InvalidRequest(f"{name} must be true or false", expression=(name,))
        return MissingClause(param, value == "true")
    if (
        param.type == "reference"
        and modifier
        and (modifier in REGISTRY or modifier in param.targets)
    ):
        return ValueClause(param, None, _typed_references(param, modifier, value))
    if modifier and modifier not in _MODIFIERS[param.type]:
        raise InvalidRequest(
            f"Modifier :{modifier} is not supported on {param.type} parameter {base!r}",
            expression=(name,),
        )
    if base in COMMON_PARAMS and modifier not in {"", "not"}:
        raise InvalidRequest(f"Modifier :{modifier} is not supported on {base}")
    if modifier == "text":
        return ValueClause(param, "text", tuple(StringValue(v) for v in value.split(",")))
    if param.type == "string" and modifier != "exact":
        _check_string_length(name, value)
    return ValueClause(param, modifier or None, parse_values(param, value))


def _check_string_length(name: str, value: str) -> None:
    # The index keeps the first STRING_KEY_CHARS characters of a string (fhir/index.py):
    # a longer prefix could not be matched exactly. `:exact` compares the whole string.
    if any(len(part) > STRING_KEY_CHARS for part in value.split(",")):
        raise InvalidRequest(
            f"String search values are limited to {STRING_KEY_CHARS} characters "
            f"(use {name.partition(':')[0]}:exact for a whole long string)",
            expression=(name,),
        )


def _typed_references(param: SearchParam, type_: str, value: str) -> tuple[ReferenceValue, ...]:
    parsed = cast(tuple[ReferenceValue, ...], parse_values(param, value))
    return tuple(replace(v, type=type_) for v in parsed)


def _chain(resource_type: str, head: str, rest: str, value: str) -> Clause:
    base, _, type_modifier = head.partition(":")
    param = search_param(resource_type, base)
    if param is None or param.type != "reference":
        raise _Unknown(f"Unknown reference parameter {base!r} for chaining on {resource_type}")
    if "." in rest:
        raise InvalidRequest(f"Only one level of chaining is supported: {head}.{rest}")
    targets = (type_modifier,) if type_modifier else param.targets or tuple(REGISTRY)
    inner: dict[str, Clause] = {}
    for target in targets:
        if target in REGISTRY and search_param(target, rest.partition(":")[0]) is not None:
            inner[target] = _simple(target, rest, value)
    if not inner:
        raise _Unknown(f"No target of {resource_type}.{base} has a parameter {rest!r}")
    return ChainClause(param, inner)


def _has(resource_type: str, name: str, value: str) -> Clause:
    parts = name.split(":")
    if len(parts) != 4 or "_has" in parts[3] or "." in parts[3]:
        raise InvalidRequest(
            f"{name!r}: use _has:Type:reference:parameter (one level)", expression=(name,)
        )
    _, source_type, reference_name, inner_name = parts
    reference = search_param(source_type, reference_name)
    if reference is None or reference.type != "reference":
        raise _Unknown(f"{source_type} has no reference parameter {reference_name!r}")
    if reference.targets and resource_type not in reference.targets:
        raise InvalidRequest(f"{source_type}.{reference_name} cannot refer to a {resource_type}")
    return HasClause(source_type, reference, _simple(source_type, inner_name, value))
