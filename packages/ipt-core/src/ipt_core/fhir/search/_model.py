"""The typed form of a search: what the parser produces and the SQL builder consumes.

A search is a conjunction of clauses (repeated parameters are AND-ed); each clause is a
disjunction of values (comma-separated values are OR-ed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from ipt_core.fhir.errors import Issue
from ipt_core.fhir.registry import SearchParam

__all__ = [
    "ChainClause",
    "Clause",
    "DateValue",
    "HasClause",
    "Include",
    "MissingClause",
    "NumberValue",
    "Prefix",
    "ReferenceValue",
    "SearchQuery",
    "SortKey",
    "StringValue",
    "Summary",
    "TokenValue",
    "Value",
    "ValueClause",
]

Prefix = Literal["eq", "ne", "lt", "gt", "le", "ge", "sa", "eb", "ap"]
Summary = Literal["true", "text", "data", "count", "false"]


@dataclass(frozen=True)
class TokenValue:
    """`system|code`, `|code` (no system), `system|` (any code) or `code` (any system)."""

    system: str | None
    code: str | None
    match_system: bool  # False: the value named no system, so any system matches


@dataclass(frozen=True)
class StringValue:
    """A string to match (also the text of a token's `:text` search)."""

    text: str


@dataclass(frozen=True)
class DateValue:
    """A date with its prefix, as the inclusive UTC range its precision stands for."""

    prefix: Prefix
    low: datetime
    high: datetime


@dataclass(frozen=True)
class NumberValue:
    """A number (or quantity) with its prefix and the range its significant digits imply."""

    prefix: Prefix
    value: Decimal
    low: Decimal  # inclusive
    high: Decimal  # exclusive
    system: str | None = None  # quantities only; None matches any
    code: str | None = None


@dataclass(frozen=True)
class ReferenceValue:
    """A reference target: type (None for a bare id) and id."""

    type: str | None
    id: str


Value = TokenValue | StringValue | DateValue | NumberValue | ReferenceValue


@dataclass(frozen=True)
class ValueClause:
    """One occurrence of a parameter: matches when any of its values matches."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]


@dataclass(frozen=True)
class MissingClause:
    """`param:missing=true|false`."""

    param: SearchParam
    missing: bool


@dataclass(frozen=True)
class ChainClause:
    """`reference.param=value`: the referenced resource, of one of the types, matches `inner`."""

    param: SearchParam
    inner: Mapping[str, Clause]  # target type -> the clause on that type


@dataclass(frozen=True)
class HasClause:
    """`_has:Type:reference:param=value`: some `Type` referring to this one matches `inner`."""

    source_type: str
    reference: SearchParam
    inner: Clause


Clause = ValueClause | MissingClause | ChainClause | HasClause


@dataclass(frozen=True)
class SortKey:
    """One `_sort` parameter and its direction."""

    param: SearchParam
    descending: bool


@dataclass(frozen=True)
class Include:
    """`_include` / `_revinclude`: follow `param` of `source_type` (to `target_type` if set).

    `reverse` (a `_revinclude`) finds the `source_type` resources that refer to the results.
    """

    source_type: str
    param: SearchParam
    target_type: str | None
    iterate: bool
    reverse: bool = False


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search of one resource type.

    `signature` lists the parameters that decide which resources match and in what order;
    a page cursor is bound to it, so it cannot be replayed against another search.
    """

    resource_type: str
    clauses: tuple[Clause, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = 50
    summary: Summary | None = None
    elements: tuple[str, ...] = ()
    total: bool = True
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    issues: tuple[Issue, ...] = ()
    signature: tuple[tuple[str, str], ...] = field(default=())

    @property
    def counts_only(self) -> bool:
        """Whether only the total is wanted (`_summary=count` or `_count=0`)."""
        return self.summary == "count" or self.count == 0
